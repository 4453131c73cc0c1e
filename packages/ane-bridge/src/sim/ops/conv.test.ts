import { describe, expect, it } from 'vitest';
import type { FloatTensor } from '../tensor';
import { fp16Result, product, randomFp16 } from '../test-support.test-helper';
import type { ConvParams } from './conv';
import { conv, planConv } from './conv';

/**
 * Direct convolution in float64 from the definition, with the padding written out per pad type:
 * out[n, o, oh, ow] = bias[o] + sum over the group's channels c and taps (kh, kw) of
 *   w[o, c, kh, kw] * x[n, g*ICg + c, oh*sh - top + kh*dh, ow*sw - left + kw*dw] (0 outside x).
 */
function directConv(
  x: Float32Array,
  [N, C, H, W]: number[],
  w: Float32Array,
  [OC, ICg, KH, KW]: number[],
  bias: Float32Array | undefined,
  { strides = [1, 1], dilations = [1, 1], groups = 1, padType = 'valid', pad = [0, 0, 0, 0] }: ConvParams,
): { out: Float64Array; shape: number[] } {
  const [sh, sw] = strides as [number, number];
  const [dh, dw] = dilations as [number, number];
  let top = 0;
  let bottom = 0;
  let left = 0;
  let right = 0;
  if (padType === 'custom') [top, bottom, left, right] = pad as [number, number, number, number];
  if (padType === 'same' || padType === 'same_lower') {
    const totalPad = (size: number, k: number, s: number, d: number) =>
      Math.max(0, (Math.ceil(size / s) - 1) * s + (k - 1) * d + 1 - size);
    const th = totalPad(H!, KH!, sh, dh);
    const tw = totalPad(W!, KW!, sw, dw);
    top = padType === 'same' ? Math.floor(th / 2) : Math.ceil(th / 2);
    left = padType === 'same' ? Math.floor(tw / 2) : Math.ceil(tw / 2);
    bottom = th - top;
    right = tw - left;
  }
  const OH = Math.floor((H! + top + bottom - (KH! - 1) * dh - 1) / sh) + 1;
  const OW = Math.floor((W! + left + right - (KW! - 1) * dw - 1) / sw) + 1;
  const out = new Float64Array(N! * OC! * OH * OW);
  const OCg = OC! / groups;
  for (let n = 0; n < N!; n++)
    for (let o = 0; o < OC!; o++) {
      const g = Math.floor(o / OCg);
      for (let oh = 0; oh < OH; oh++)
        for (let ow = 0; ow < OW; ow++) {
          let sum = bias?.[o] ?? 0;
          for (let c = 0; c < ICg!; c++)
            for (let kh = 0; kh < KH!; kh++)
              for (let kw = 0; kw < KW!; kw++) {
                const ih = oh * sh - top + kh * dh;
                const iw = ow * sw - left + kw * dw;
                if (ih < 0 || ih >= H! || iw < 0 || iw >= W!) continue;
                sum +=
                  w[((o * ICg! + c) * KH! + kh) * KW! + kw]! *
                  x[((n * C! + g * ICg! + c) * H! + ih) * W! + iw]!;
              }
          out[((n * OC! + o) * OH + oh) * OW + ow] = sum;
        }
    }
  return { out, shape: [N!, OC!, OH, OW] };
}

interface ConvCase {
  name: string;
  x: number[];
  w: number[];
  bias?: boolean;
  params: ConvParams;
}

const CASES: ConvCase[] = [
  { name: '1x1 linear layer on [1, C, 1, S]', x: [1, 16, 1, 9], w: [24, 16, 1, 1], params: {} },
  { name: '1x1 with bias and batch 2', x: [2, 8, 3, 5], w: [6, 8, 1, 1], bias: true, params: {} },
  { name: '3x3 valid', x: [1, 3, 7, 6], w: [4, 3, 3, 3], params: {} },
  {
    name: '3x3 stride 2, custom pads',
    x: [1, 3, 9, 8],
    w: [5, 3, 3, 3],
    params: { strides: [2, 2], padType: 'custom', pad: [1, 2, 0, 1] },
  },
  {
    name: '3x3 same, stride 2 (odd padding after)',
    x: [1, 2, 8, 7],
    w: [3, 2, 3, 3],
    params: { strides: [2, 2], padType: 'same' },
  },
  {
    name: '2x4 same_lower (odd padding before)',
    x: [1, 2, 6, 7],
    w: [3, 2, 2, 4],
    params: { padType: 'same_lower' },
  },
  { name: 'dilation 2', x: [1, 3, 9, 10], w: [2, 3, 3, 2], params: { dilations: [2, 3] } },
  {
    name: 'groups 2 with bias',
    x: [1, 6, 5, 5],
    w: [4, 3, 3, 3],
    bias: true,
    params: { groups: 2, padType: 'same' },
  },
  {
    name: 'depthwise (groups = C)',
    x: [1, 4, 6, 6],
    w: [4, 1, 3, 3],
    params: { groups: 4, padType: 'custom', pad: [1, 1, 1, 1] },
  },
  {
    name: 'pointwise stride 2 (not the plain GEMM path)',
    x: [1, 4, 5, 5],
    w: [3, 4, 1, 1],
    params: { strides: [2, 2] },
  },
  { name: 'K = 67 tail through the GEMM', x: [1, 67, 1, 13], w: [5, 67, 1, 1], params: {} },
];

describe('conv', () => {
  for (const testCase of CASES) {
    it(`${testCase.name}: matches a direct convolution, rounded once`, () => {
      const x = randomFp16(product(testCase.x), 1, 2);
      const w = randomFp16(product(testCase.w), 2, 0.5);
      const bias = testCase.bias ? randomFp16(testCase.w[0]!, 3) : undefined;
      const { outShape, geometry } = planConv(testCase.x, testCase.w, testCase.params);
      const reference = directConv(x, testCase.x, w, testCase.w, bias, testCase.params);
      expect(outShape).toEqual(reference.shape);
      const out: FloatTensor = { dtype: 'fp16', shape: outShape, data: new Float32Array(product(outShape)) };
      conv(out, x, w, bias, geometry, new Float32Array(geometry.scratchLength));
      reference.out.forEach((exact, i) => {
        expect(out.data[i], `element ${i}`).toBe(fp16Result(exact));
      });
    });
  }

  it('a 1x1 conv with stride 1 and no padding multiplies x directly (no im2col scratch)', () => {
    expect(planConv([1, 64, 1, 32], [128, 64, 1, 1], {}).geometry.pointwise).toBe(true);
    expect(planConv([1, 64, 1, 32], [128, 64, 1, 1], {}).geometry.scratchLength).toBe(0);
  });

  it('1-D conv [N, C, W] is a 2-D conv of height 1', () => {
    const x = randomFp16(2 * 11, 4);
    const w = randomFp16(3 * 2 * 3, 5);
    const { outShape, geometry } = planConv([1, 2, 11], [3, 2, 3], {
      strides: [2],
      padType: 'custom',
      pad: [1, 1],
    });
    expect(outShape).toEqual([1, 3, 6]);
    const out: FloatTensor = { dtype: 'fp16', shape: outShape, data: new Float32Array(18) };
    conv(out, x, w, undefined, geometry, new Float32Array(geometry.scratchLength));
    const reference = directConv(x, [1, 2, 1, 11], w, [3, 2, 1, 3], undefined, {
      strides: [1, 2],
      padType: 'custom',
      pad: [0, 0, 1, 1],
    });
    reference.out.forEach((exact, i) => {
      expect(out.data[i]).toBe(fp16Result(exact));
    });
  });

  it('rejects mismatched channels and groups', () => {
    expect(() => planConv([1, 6, 4, 4], [4, 4, 1, 1], {})).toThrow(RangeError);
    expect(() => planConv([1, 6, 4, 4], [4, 3, 1, 1], { groups: 4 })).toThrow(RangeError);
  });
});
