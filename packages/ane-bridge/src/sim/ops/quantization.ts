/**
 * Affine int8/uint8 quantization (MIL `quantize`, `dequantize`, `constexpr_affine_dequantize`):
 *   quantize:   q = clamp(round_half_even(x / scale) + zero_point, qmin, qmax)
 *   dequantize: x = (q - zero_point) * scale
 * `scale` and `zero_point` are scalars (length 1) or vectors along `axis`; x / scale is an fp32
 * quotient, the dequantized value is rounded to fp16 once.
 */
import { finishFloat, roundHalfToEven } from '../numerics';
import type { FloatTensor } from '../tensor';
import type { ReductionGeometry } from './reduce';

export type QuantizedDtype = 'int8' | 'uint8';

export function quantizedRange(dtype: QuantizedDtype): [number, number] {
  return dtype === 'int8' ? [-128, 127] : [0, 255];
}

/** Index of the per-axis parameter for element i of a tensor viewed as [outer, channels, inner]. */
function channelOf(i: number, channels: number, inner: number): number {
  return channels === 1 ? 0 : Math.floor(i / inner) % channels;
}

function checkParameterLength(name: string, length: number, channels: number): void {
  if (length !== 1 && length !== channels) {
    throw new RangeError(`${name} has ${length} entries; expected 1 or ${channels} (the extent of the axis)`);
  }
}

/**
 * out = quantize(x) where `g` views x as [outer, channels = extent of axis, inner]
 * (a whole-tensor view with channels = 1 when scale and zero point are scalars).
 */
export function quantize(
  out: Int8Array | Uint8Array,
  x: Float32Array,
  scale: Float32Array,
  zeroPoint: ArrayLike<number> | undefined,
  dtype: QuantizedDtype,
  g: ReductionGeometry,
): void {
  const channels = scale.length === 1 && (zeroPoint?.length ?? 1) === 1 ? 1 : g.reduced;
  checkParameterLength('quantize scale', scale.length, channels);
  if (zeroPoint !== undefined) checkParameterLength('quantize zero_point', zeroPoint.length, channels);
  const [low, high] = quantizedRange(dtype);
  for (let i = 0; i < x.length; i++) {
    const c = channelOf(i, channels, g.inner);
    const s = scale.length === 1 ? scale[0]! : scale[c]!;
    const zp = zeroPoint === undefined ? 0 : zeroPoint.length === 1 ? zeroPoint[0]! : zeroPoint[c]!;
    const q = roundHalfToEven(Math.fround(x[i]! / s)) + zp;
    // NaN has no integer image; it lands on 0 like a typed-array store would put it.
    out[i] = Number.isNaN(q) ? 0 : Math.min(high, Math.max(low, q));
  }
}

/** out = (q - zero_point) * scale, per-axis parameters as in `quantize`. */
export function dequantize(
  out: FloatTensor,
  q: ArrayLike<number>,
  scale: Float32Array,
  zeroPoint: ArrayLike<number> | undefined,
  g: ReductionGeometry,
): void {
  const channels = scale.length === 1 && (zeroPoint?.length ?? 1) === 1 ? 1 : g.reduced;
  checkParameterLength('dequantize scale', scale.length, channels);
  if (zeroPoint !== undefined) checkParameterLength('dequantize zero_point', zeroPoint.length, channels);
  const o = out.data;
  for (let i = 0; i < o.length; i++) {
    const c = channelOf(i, channels, g.inner);
    const s = scale.length === 1 ? scale[0]! : scale[c]!;
    const zp = zeroPoint === undefined ? 0 : zeroPoint.length === 1 ? zeroPoint[0]! : zeroPoint[c]!;
    o[i] = (q[i]! - zp) * s;
  }
  finishFloat(out);
}
