/**
 * conv: 1-D and 2-D convolution (MIL `conv`) as GEMM. Per batch item and group:
 *   out_g [OCg, OH*OW] = W_g [OCg, ICg*KH*KW] * col_g [ICg*KH*KW, OH*OW]
 * where col_g is the im2col unfolding of the group's input channels. A 1x1 conv with stride 1 and
 * no padding (a linear layer on [1, C, 1, S]) multiplies x directly: no unfolding, no copy.
 * The bias (when present) seeds C before the GEMM; the fp32 result is rounded to fp16 once.
 */
// The dispatching GEMM: the native addon's when loaded, else the TS twin in ../gemm.ts.
import { sgemm } from '../../kernels';
import { finishFloat } from '../numerics';
import type { FloatTensor } from '../tensor';

export type ConvPadType = 'valid' | 'same' | 'same_lower' | 'custom';

export interface ConvParams {
  /** One per spatial axis; default 1. */
  readonly strides?: readonly number[];
  readonly padType?: ConvPadType;
  /** custom padding: [before_0, after_0, before_1, after_1] per spatial axis. */
  readonly pad?: readonly number[];
  readonly dilations?: readonly number[];
  readonly groups?: number;
}

/** A conv reduced to 2-D: a 1-D conv is a 2-D conv with H = KH = 1. */
export interface ConvGeometry {
  readonly batch: number;
  readonly inChannels: number;
  readonly inH: number;
  readonly inW: number;
  readonly outChannels: number;
  readonly kernelH: number;
  readonly kernelW: number;
  readonly outH: number;
  readonly outW: number;
  readonly strideH: number;
  readonly strideW: number;
  readonly dilationH: number;
  readonly dilationW: number;
  readonly padTop: number;
  readonly padLeft: number;
  readonly groups: number;
  /** 1x1, stride 1, no padding: x is already the GEMM's right operand. */
  readonly pointwise: boolean;
  /** Elements of the im2col scratch (0 when pointwise). */
  readonly scratchLength: number;
}

function padding(
  padType: ConvPadType,
  pad: readonly number[] | undefined,
  axis: number,
  inExtent: number,
  kernel: number,
  stride: number,
  dilation: number,
): [number, number] {
  switch (padType) {
    case 'valid':
      return [0, 0];
    case 'custom':
      return [pad?.[2 * axis] ?? 0, pad?.[2 * axis + 1] ?? 0];
    case 'same':
    case 'same_lower': {
      const out = Math.ceil(inExtent / stride);
      const total = Math.max(0, (out - 1) * stride + (kernel - 1) * dilation + 1 - inExtent);
      // 'same' puts the odd pixel after, 'same_lower' before.
      const before = padType === 'same' ? Math.floor(total / 2) : Math.ceil(total / 2);
      return [before, total - before];
    }
  }
}

/** Validates shapes and parameters and computes the output shape and geometry. */
export function planConv(
  xShape: readonly number[],
  weightShape: readonly number[],
  params: ConvParams,
): { outShape: number[]; geometry: ConvGeometry } {
  const spatialRank = xShape.length - 2;
  if (spatialRank !== 1 && spatialRank !== 2) {
    throw new RangeError(`conv: x must be [N, C, W] or [N, C, H, W], got [${xShape.join(', ')}]`);
  }
  if (weightShape.length !== xShape.length) {
    throw new RangeError(
      `conv: weight [${weightShape.join(', ')}] must have the rank of x [${xShape.join(', ')}]`,
    );
  }
  const groups = params.groups ?? 1;
  const [batch, inChannels] = xShape as [number, number];
  const outChannels = weightShape[0]!;
  if (!Number.isInteger(groups) || groups < 1 || inChannels % groups !== 0 || outChannels % groups !== 0) {
    throw new RangeError(
      `conv: groups ${groups} must divide input channels ${inChannels} and output channels ${outChannels}`,
    );
  }
  if (weightShape[1] !== inChannels / groups) {
    throw new RangeError(
      `conv: weight [${weightShape.join(', ')}] needs ${inChannels / groups} = C_in/groups on axis 1 for x [${xShape.join(', ')}]`,
    );
  }
  const spatialIn = xShape.slice(2);
  const kernel = weightShape.slice(2);
  const strides = params.strides ?? spatialIn.map(() => 1);
  const dilations = params.dilations ?? spatialIn.map(() => 1);
  const padType = params.padType ?? 'valid';
  const pads = spatialIn.map((extent, axis) =>
    padding(padType, params.pad, axis, extent, kernel[axis]!, strides[axis] ?? 1, dilations[axis] ?? 1),
  );
  const spatialOut = spatialIn.map((extent, axis) => {
    const [before, after] = pads[axis]!;
    const span = (kernel[axis]! - 1) * (dilations[axis] ?? 1) + 1;
    const out = Math.floor((extent + before + after - span) / (strides[axis] ?? 1)) + 1;
    if (out < 1)
      throw new RangeError(
        `conv: kernel span ${span} exceeds padded input extent ${extent + before + after}`,
      );
    return out;
  });
  // 1-D conv as 2-D with a unit height.
  const is2d = spatialRank === 2;
  const geometry: ConvGeometry = {
    batch,
    inChannels,
    inH: is2d ? spatialIn[0]! : 1,
    inW: spatialIn[spatialRank - 1]!,
    outChannels,
    kernelH: is2d ? kernel[0]! : 1,
    kernelW: kernel[spatialRank - 1]!,
    outH: is2d ? spatialOut[0]! : 1,
    outW: spatialOut[spatialRank - 1]!,
    strideH: is2d ? (strides[0] ?? 1) : 1,
    strideW: strides[spatialRank - 1] ?? 1,
    dilationH: is2d ? (dilations[0] ?? 1) : 1,
    dilationW: dilations[spatialRank - 1] ?? 1,
    padTop: is2d ? pads[0]![0] : 0,
    padLeft: pads[spatialRank - 1]![0],
    groups,
    pointwise: false,
    scratchLength: 0,
  };
  const pointwise =
    geometry.kernelH === 1 &&
    geometry.kernelW === 1 &&
    geometry.strideH === 1 &&
    geometry.strideW === 1 &&
    pads.every(([before, after]) => before === 0 && after === 0);
  const scratchLength = pointwise
    ? 0
    : (inChannels / groups) * geometry.kernelH * geometry.kernelW * geometry.outH * geometry.outW;
  return {
    outShape: [batch, outChannels, ...spatialOut],
    geometry: { ...geometry, pointwise, scratchLength },
  };
}

/**
 * col [ICg*KH*KW, OH*OW] from x_g [ICg, H, W]: col[(c*KH + kh)*KW + kw, oh*OW + ow] =
 * x_g[c, oh*sh - padTop + kh*dh, ow*sw - padLeft + kw*dw], zero outside the input.
 */
function im2col(
  col: Float32Array,
  x: Float32Array,
  xOffset: number,
  channels: number,
  g: ConvGeometry,
): void {
  const { inH, inW, kernelH, kernelW, outH, outW, strideH, strideW, dilationH, dilationW, padTop, padLeft } =
    g;
  const plane = outH * outW;
  let row = 0;
  for (let c = 0; c < channels; c++) {
    const channelBase = xOffset + c * inH * inW;
    for (let kh = 0; kh < kernelH; kh++) {
      for (let kw = 0; kw < kernelW; kw++, row++) {
        const rowBase = row * plane;
        for (let oh = 0; oh < outH; oh++) {
          const ih = oh * strideH - padTop + kh * dilationH;
          const outBase = rowBase + oh * outW;
          if (ih < 0 || ih >= inH) {
            col.fill(0, outBase, outBase + outW);
            continue;
          }
          const inBase = channelBase + ih * inW;
          for (let ow = 0; ow < outW; ow++) {
            const iw = ow * strideW - padLeft + kw * dilationW;
            col[outBase + ow] = iw >= 0 && iw < inW ? x[inBase + iw]! : 0;
          }
        }
      }
    }
  }
}

/**
 * out [N, OC, OH, OW] = conv(x [N, C, H, W], weight [OC, C/groups, KH, KW]) + bias [OC].
 * `scratch` holds at least `geometry.scratchLength` elements.
 */
export function conv(
  out: FloatTensor,
  x: Float32Array,
  weight: Float32Array,
  bias: Float32Array | undefined,
  g: ConvGeometry,
  scratch: Float32Array,
): void {
  const o = out.data;
  const inGroup = g.inChannels / g.groups;
  const outGroup = g.outChannels / g.groups;
  const inPlane = g.inH * g.inW;
  const outPlane = g.outH * g.outW;
  const depth = inGroup * g.kernelH * g.kernelW;
  for (let n = 0; n < g.batch; n++) {
    for (let group = 0; group < g.groups; group++) {
      const xOffset = (n * g.inChannels + group * inGroup) * inPlane;
      const outOffset = (n * g.outChannels + group * outGroup) * outPlane;
      let right: Float32Array;
      if (g.pointwise) right = xOffset === 0 ? x : x.subarray(xOffset);
      else {
        im2col(scratch, x, xOffset, inGroup, g);
        right = scratch;
      }
      if (bias !== undefined) {
        for (let oc = 0; oc < outGroup; oc++) {
          const start = outOffset + oc * outPlane;
          o.fill(bias[group * outGroup + oc]!, start, start + outPlane);
        }
      }
      const left = group === 0 ? weight : weight.subarray(group * outGroup * depth);
      const result = outOffset === 0 ? o : o.subarray(outOffset);
      sgemm(
        false,
        false,
        outGroup,
        outPlane,
        depth,
        1,
        left,
        depth,
        right,
        outPlane,
        bias === undefined ? 0 : 1,
        result,
        outPlane,
      );
    }
  }
  finishFloat(out);
}
