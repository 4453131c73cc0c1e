import { describe, expect, it } from 'vitest';
import type { FloatTensor } from '../tensor';
import { dequantize, quantize } from './quantization';
import { planAxis } from './reduce';

const whole = (n: number) => ({ outer: 1, reduced: 1, inner: n });

describe('quantize', () => {
  it('rounds half to even and saturates to [-128, 127]', () => {
    const scale = Float32Array.of(0.125);
    // In units of the scale: 0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 126.5, 127.5, -128.5, 300, -300, 0.49
    const x = Float32Array.of(0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 126.5, 127.5, -128.5, 300, -300, 0.49).map(
      (v) => v * 0.125,
    );
    const out = new Int8Array(x.length);
    quantize(out, x, scale, undefined, 'int8', whole(x.length));
    expect([...out]).toEqual([0, 2, 2, 0, -2, -2, 126, 127, -128, 127, -128, 0]);
  });

  it('adds the zero point before clamping; uint8 clamps to [0, 255]', () => {
    const out = new Uint8Array(4);
    quantize(out, Float32Array.of(-10, 0, 2.5, 500), Float32Array.of(1), [10], 'uint8', whole(4));
    expect([...out]).toEqual([0, 10, 12, 255]);
  });

  it('applies a per-channel scale along the axis', () => {
    // x [2, 3] quantized along axis 1 with scales (1, 0.5, 0.25).
    const out = new Int8Array(6);
    quantize(
      out,
      Float32Array.of(1, 1, 1, 2, 2, 2),
      Float32Array.of(1, 0.5, 0.25),
      undefined,
      'int8',
      planAxis([2, 3], 1),
    );
    expect([...out]).toEqual([1, 2, 4, 2, 4, 8]);
  });

  it('maps NaN to 0', () => {
    const out = new Int8Array(1);
    quantize(out, Float32Array.of(Number.NaN), Float32Array.of(1), undefined, 'int8', whole(1));
    expect(out[0]).toBe(0);
  });
});

describe('dequantize', () => {
  it('(q - zero_point) * scale per channel along axis 0, rounded to fp16', () => {
    const out: FloatTensor = { dtype: 'fp16', shape: [2, 2], data: new Float32Array(4) };
    dequantize(out, Int8Array.of(3, -4, 3, -4), Float32Array.of(0.125, 0.1), [1, -1], planAxis([2, 2], 0));
    // Row 1: (3 + 1) * 0.1 and (-4 + 1) * 0.1 as the fp32 products, rounded to fp16.
    expect([...out.data]).toEqual([0.25, -0.625, 0.39990234375, -0.300048828125]);
  });
});
