import { describe, expect, it } from 'vitest';
import { fp16BitsToFp32, fp32BitsToFp16Bits, fp32ToFp16Bits } from './fp16';
import { hostKernels } from './index';
import { rng, TAIL_SIZES, variants, within } from './kernels.test-helper';

// ---- an independent float64 reference --------------------------------------------------------

function decodeHalf(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 31;
  const m = h & 1023;
  if (e === 31) return m === 0 ? sign * Number.POSITIVE_INFINITY : Number.NaN;
  if (e === 0) return sign * m * 2 ** -24;
  return sign * (1024 + m) * 2 ** (e - 25);
}

/** fp16 bits of a finite-or-not float64 value, rounding to nearest even by value arithmetic. */
function referenceHalf(x: number, saturate = false): number {
  if (Number.isNaN(x)) return -1; // NaN: checked separately (payload rules)
  const sign = x < 0 || Object.is(x, -0) ? 0x8000 : 0;
  const a = Math.abs(x);
  if (a === Number.POSITIVE_INFINITY) return sign | 0x7c00;
  if (a >= 65520) return sign | (saturate ? 0x7bff : 0x7c00);
  let e = a === 0 ? -14 : Math.floor(Math.log2(a));
  if (a !== 0 && 2 ** e > a) e--;
  if (a !== 0 && 2 ** (e + 1) <= a) e++;
  e = Math.max(e, -14);
  const quantum = 2 ** (e - 10);
  const units = a / quantum; // exact: a has at most 24 significant bits
  let n = Math.floor(units);
  const fraction = units - n;
  if (fraction > 0.5 || (fraction === 0.5 && n % 2 === 1)) n++;
  const value = n * quantum;
  if (value >= 65520) return sign | (saturate ? 0x7bff : 0x7c00);
  if (value < 2 ** -14) return sign | Math.round(value / 2 ** -24);
  let ve = Math.floor(Math.log2(value));
  if (2 ** ve > value) ve--;
  if (2 ** (ve + 1) <= value) ve++;
  return sign | ((ve + 15) << 10) | (value / 2 ** (ve - 10) - 1024);
}

function floatOfBits(bits: number): number {
  return new Float32Array(new Uint32Array([bits >>> 0]).buffer)[0] as number;
}

const EDGE_FLOATS = [
  0,
  -0,
  1,
  -1,
  65504,
  -65504,
  65505,
  65519.99609375,
  65520,
  -65520,
  65536,
  1e10,
  -1e10,
  3.4028234663852886e38,
  Number.POSITIVE_INFINITY,
  Number.NEGATIVE_INFINITY,
  2 ** -14,
  2 ** -14 - 2 ** -24,
  2 ** -24,
  2 ** -25,
  2 ** -25 * (1 + 2 ** -23),
  1.5 * 2 ** -24,
  2.5 * 2 ** -24,
  3.5 * 2 ** -24,
  2 ** -26,
  1e-40,
  -1e-40,
  1e-45,
  1 + 2 ** -11,
  1 + 3 * 2 ** -11,
  1 + 2 ** -11 + 2 ** -23,
  2048 + 1,
  2048 + 3,
  0.1,
  -0.3,
  6.1e-5,
  5.96e-8,
];

const NAN_BITS = [0x7fc00000, 0xffc00000, 0x7f800001, 0x7fbfffff, 0x7fc02000, 0xff802001, 0x7fffffff];

describe('fp16 scalar conversion', () => {
  it('decodes every half exactly, and re-encodes every non-NaN half to itself', () => {
    for (let h = 0; h < 65536; h++) {
      const value = fp16BitsToFp32(h);
      const expected = decodeHalf(h);
      if (Number.isNaN(expected)) {
        expect(Number.isNaN(value)).toBe(true);
        continue;
      }
      expect(Object.is(value, expected) || value === expected).toBe(true);
      expect(fp32ToFp16Bits(value)).toBe(h);
    }
  });

  it('rounds to nearest even, overflows to inf and keeps signed zeros (edge values)', () => {
    for (const x of EDGE_FLOATS) {
      const f = Math.fround(x);
      expect(fp32ToFp16Bits(f), `x = ${x}`).toBe(referenceHalf(f));
      expect(fp32ToFp16Bits(-f), `x = ${-x}`).toBe(referenceHalf(-f));
    }
    expect(fp32ToFp16Bits(65519.99609375)).toBe(0x7bff);
    expect(fp32ToFp16Bits(65520)).toBe(0x7c00);
    expect(fp32ToFp16Bits(-0)).toBe(0x8000);
    expect(fp32ToFp16Bits(2 ** -25)).toBe(0); // the tie goes to even zero
    expect(fp32ToFp16Bits(1.5 * 2 ** -24)).toBe(2);
    expect(fp32ToFp16Bits(2.5 * 2 ** -24)).toBe(2);
  });

  it('saturates finite overflow to ±65504 on request, leaving inf and NaN alone', () => {
    expect(fp32ToFp16Bits(65520, true)).toBe(0x7bff);
    expect(fp32ToFp16Bits(-1e30, true)).toBe(0xfbff);
    expect(fp32ToFp16Bits(Number.POSITIVE_INFINITY, true)).toBe(0x7c00);
    expect(fp32ToFp16Bits(Number.NEGATIVE_INFINITY, true)).toBe(0xfc00);
    expect(fp32BitsToFp16Bits(0x7fc00000, true)).toBe(0x7e00);
  });

  it('keeps NaN a NaN: quiet bit set, sign and top payload bits kept', () => {
    for (const bits of NAN_BITS) {
      const half = fp32BitsToFp16Bits(bits);
      expect(half & 0x7e00).toBe(0x7e00);
      expect(half & 0x8000).toBe(bits & 0x80000000 ? 0x8000 : 0);
      expect(half & 0x1ff).toBe((bits >>> 13) & 0x1ff);
    }
  });

  it('matches the float64 reference on random float bits of every exponent', () => {
    const random = rng(1);
    for (let i = 0; i < 200_000; i++) {
      const bits = Math.floor(random() * 2 ** 32);
      const x = floatOfBits(bits);
      if (Number.isNaN(x)) continue;
      const got = fp32BitsToFp16Bits(bits);
      if (got !== referenceHalf(x)) expect(got, `bits 0x${bits.toString(16)}`).toBe(referenceHalf(x));
      const sat = fp32BitsToFp16Bits(bits, true);
      if (sat !== referenceHalf(x, true))
        expect(sat, `saturated, bits 0x${bits.toString(16)}`).toBe(referenceHalf(x, true));
    }
  });
});

/** Odd shapes of the transposed kernels: 1x1, a row, a column, every tile size's tails, several cache blocks. */
const TRANSPOSED_SHAPES = [
  [1, 1],
  [1, 67],
  [67, 1],
  [17, 33],
  [33, 17],
  [8, 8],
  [16, 16],
  [15, 17],
  [65, 63],
  [4, 130],
  [130, 5],
] as const;

/** The first index where two equally long integer arrays differ, or -1 (toEqual is slow on big arrays). */
function firstDifference(a: Uint16Array | Uint32Array, b: Uint16Array | Uint32Array): number {
  if (a.length !== b.length) return 0;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return i;
  return -1;
}

/** fp32 bits of a half, exact, NaN payload kept and quieted (what F16C and the TS codec return). */
function halfToFloatBits(h: number): number {
  const sign = (h & 0x8000) << 16;
  const e = (h >> 10) & 31;
  const m = h & 1023;
  if (e === 31) return (sign | 0x7f800000 | (m !== 0 ? 0x400000 : 0) | (m << 13)) >>> 0;
  return (new Uint32Array(new Float32Array([decodeHalf(h)]).buffer)[0] as number) >>> 0;
}

/** Random float bits concentrated where fp16 is interesting, plus the edge values and NaNs. */
function testFloats(n: number, seed: number): Float32Array {
  const random = rng(seed);
  const bits = new Uint32Array(n);
  for (let i = 0; i < n; i++) {
    const r = random();
    if (r < 0.1) bits[i] = NAN_BITS[i % NAN_BITS.length] as number;
    else if (r < 0.2)
      bits[i] = new Uint32Array(
        new Float32Array([EDGE_FLOATS[i % EDGE_FLOATS.length] as number]).buffer,
      )[0] as number;
    else {
      // exponents 90..160 cover subnormal halves, normals and overflow
      const exponent = 90 + Math.floor(random() * 70);
      bits[i] = ((random() < 0.5 ? 0x80000000 : 0) | (exponent << 23) | Math.floor(random() * 2 ** 23)) >>> 0;
    }
  }
  return new Float32Array(bits.buffer);
}

/** Asserts dst[i] = fp16(src[i]) bit for bit (a loop: toEqual is slow on millions of elements). */
function expectHalvesOf(dst: Uint16Array, src: Float32Array, saturate: boolean): void {
  const bits = new Uint32Array(src.buffer, src.byteOffset, src.length);
  expect(dst.length).toBe(src.length);
  for (let i = 0; i < bits.length; i++) {
    const expected = fp32BitsToFp16Bits(bits[i] as number, saturate);
    if (dst[i] !== expected)
      expect(
        dst[i],
        `element ${i} of ${bits.length} (float bits 0x${(bits[i] as number).toString(16)})`,
      ).toBe(expected);
  }
}

describe.each(variants().map((v) => [v.name, v] as const))('fp16 kernels: %s', (_name, variant) => {
  it('fp32ToFp16 equals the scalar conversion bit for bit at every tail size', () => {
    within(variant, (k) => {
      for (const n of TAIL_SIZES) {
        const src = testFloats(n, n + 7);
        for (const saturate of [false, true]) {
          const dst = new Uint16Array(n).fill(0xdead);
          k.fp32ToFp16(src, dst, { saturate });
          expectHalvesOf(dst, src, saturate);
        }
      }
    });
  });

  it('fp16ToFp32 equals the scalar decode bit for bit (all 65536 halves, unaligned views)', () => {
    within(variant, (k) => {
      const all = new Uint16Array(65536 + 3);
      for (let h = 0; h < 65536; h++) all[h + 3] = h;
      for (const offset of [3, 2, 1]) {
        const src = all.subarray(offset);
        const dst = new Float32Array(src.length + 1).subarray(1);
        k.fp16ToFp32(src, dst);
        const bits = new Uint32Array(dst.buffer, dst.byteOffset, dst.length);
        for (let i = 0; i < src.length; i++) {
          const h = src[i] as number;
          const expected = fp16BitsToFp32(h);
          if (Number.isNaN(expected)) {
            expect(bits[i], `half 0x${h.toString(16)}`).toBe(
              (((h & 0x8000) << 16) | 0x7fc00000 | ((h & 0x3ff) << 13)) >>> 0,
            );
          } else if (!Object.is(new Float32Array([expected])[0], dst[i])) {
            expect(dst[i], `half 0x${h.toString(16)}`).toBe(expected);
          }
        }
      }
    });
  });

  it('converts large arrays (the streaming path) from unaligned views', () => {
    within(variant, (k) => {
      const n = (9 << 20) / 2 + 37; // a 9 MiB+ fp16 output
      const src = testFloats(n + 1, 99).subarray(1);
      const dst = new Uint16Array(n + 5).subarray(3, 3 + n);
      k.fp32ToFp16(src, dst);
      expectHalvesOf(dst, src, false);
      const back = new Float32Array(n + 1).subarray(1);
      k.fp16ToFp32(dst, back);
      for (let i = 0; i < n; i += 997) {
        const expected = fp16BitsToFp32(dst[i] as number);
        expect(Number.isNaN(expected) ? Number.isNaN(back[i] as number) : back[i] === expected).toBe(true);
      }
    });
  });

  it('packs a strided block into a channel-first device buffer and unpacks it', () => {
    within(variant, (k) => {
      const random = rng(5);
      for (const [rows, cols] of [
        [0, 5],
        [3, 0],
        [1, 1],
        [7, 13],
        [5, 67],
        [33, 130],
      ] as const) {
        const srcRowStride = cols + 3;
        const srcOffset = 2;
        const src = testFloats(srcOffset + rows * srcRowStride + 4, rows * 100 + cols);
        const dstRowStride = cols + 11;
        const dstOffset = 5;
        const dst = new Uint16Array(dstOffset + rows * dstRowStride + 7).fill(0xbeef);
        const block = { rows, cols, srcOffset, srcRowStride, dstOffset, dstRowStride };
        const saturate = random() < 0.5;
        k.fp32ToFp16Strided(src, dst, block, { saturate });
        for (let i = 0; i < dst.length; i++) {
          const r = Math.floor((i - dstOffset) / dstRowStride);
          const c = i - dstOffset - r * dstRowStride;
          const inside = i >= dstOffset && r < rows && c < cols;
          const expected = inside
            ? fp32ToFp16Bits(src[srcOffset + r * srcRowStride + c] as number, saturate)
            : 0xbeef;
          if (inside && Number.isNaN(src[srcOffset + r * srcRowStride + c] as number)) {
            expect((dst[i] as number) & 0x7e00).toBe(0x7e00);
          } else if (dst[i] !== expected) {
            expect(dst[i], `element ${i} (${rows}x${cols})`).toBe(expected);
          }
        }
        const back = new Float32Array(srcOffset + rows * srcRowStride + 4).fill(-7);
        k.fp16ToFp32Strided(dst, back, {
          rows,
          cols,
          srcOffset: dstOffset,
          srcRowStride: dstRowStride,
          dstOffset: srcOffset,
          dstRowStride: srcRowStride,
        });
        for (let r = 0; r < rows; r++) {
          for (let c = 0; c < cols; c++) {
            const got = back[srcOffset + r * srcRowStride + c] as number;
            const expected = fp16BitsToFp32(dst[dstOffset + r * dstRowStride + c] as number);
            expect(Number.isNaN(expected) ? Number.isNaN(got) : got === expected).toBe(true);
          }
          if (cols > 0) expect(back[srcOffset + r * srcRowStride + cols]).toBe(-7);
        }
      }
    });
  });

  it('fp32ToFp16Transposed: a hand-computed 2x3 block, and the codec on odd shapes, offsets and strides', () => {
    within(variant, (k) => {
      // W = [[1, -2, 65520], [0.5, NaN, 1e-7]] -> Wᵀ as halves: [[1, 0.5], [-2, NaN], [inf, 2^-23]].
      const w = new Float32Array([1, -2, 65520, 0.5, Number.NaN, 1e-7]);
      const wt = new Uint16Array(6);
      k.fp32ToFp16Transposed(w, wt, { rows: 2, cols: 3 });
      expect([...wt]).toEqual([0x3c00, 0x3800, 0xc000, 0x7e00, 0x7c00, 0x0002]);
      k.fp32ToFp16Transposed(w, wt, { rows: 2, cols: 3 }, { saturate: true });
      expect(wt[4]).toBe(0x7bff);
      const back = new Float32Array(6);
      k.fp16ToFp32Transposed(wt, back, { rows: 3, cols: 2 });
      expect([...back]).toEqual([1, -2, 65504, 0.5, Number.NaN, 2 ** -23]);
      const random = rng(11);
      for (const [rows, cols] of TRANSPOSED_SHAPES) {
        for (const pad of [0, 3]) {
          const srcOffset = pad;
          const srcRowStride = cols + pad;
          const dstOffset = 2 * pad + 1;
          const dstRowStride = rows + 2 * pad;
          const src = testFloats(srcOffset + (rows - 1) * srcRowStride + cols, rows * 1000 + cols + pad);
          const dst = new Uint16Array(dstOffset + (cols - 1) * dstRowStride + rows).fill(0xbeef);
          const block = { rows, cols, srcOffset, srcRowStride, dstOffset, dstRowStride };
          const saturate = random() < 0.5;
          k.fp32ToFp16Transposed(src, dst, block, { saturate });
          const srcBits = new Uint32Array(src.buffer);
          for (let i = 0; i < dst.length; i++) {
            const c = Math.floor((i - dstOffset) / dstRowStride);
            const r = i - dstOffset - c * dstRowStride;
            const inside = i >= dstOffset && c < cols && r < rows;
            const expected = inside
              ? fp32BitsToFp16Bits(srcBits[srcOffset + r * srcRowStride + c] as number, saturate)
              : 0xbeef;
            if (dst[i] !== expected)
              expect(dst[i], `${rows}x${cols} pad ${pad}: element ${i}`).toBe(expected);
          }
          // And back into a rows x cols fp32 block: fp16ToFp32Transposed of the cols x rows halves.
          const restored = new Float32Array(src.length).fill(-7);
          k.fp16ToFp32Transposed(dst, restored, {
            rows: cols,
            cols: rows,
            srcOffset: dstOffset,
            srcRowStride: dstRowStride,
            dstOffset: srcOffset,
            dstRowStride: srcRowStride,
          });
          const restoredBits = new Uint32Array(restored.buffer);
          for (let i = 0; i < restored.length; i++) {
            const r = Math.floor((i - srcOffset) / srcRowStride);
            const c = i - srcOffset - r * srcRowStride;
            const inside = i >= srcOffset && r < rows && c < cols;
            const expected = inside
              ? halfToFloatBits(dst[dstOffset + c * dstRowStride + r] as number)
              : (new Uint32Array(new Float32Array([-7]).buffer)[0] as number);
            if (restoredBits[i] !== expected)
              expect(restoredBits[i], `${rows}x${cols} pad ${pad}: back element ${i}`).toBe(expected);
          }
        }
      }
    });
  });

  it('the transposed conversions agree with the TS twin, sync and async (a large block over the pool)', async () => {
    const restore = variant.enter();
    try {
      const k = variant.kernels;
      const rows = 300;
      const cols = 700;
      const src = testFloats(rows * cols, 42);
      const expected = new Uint16Array(cols * rows);
      hostKernels.ts.fp32ToFp16Transposed(src, expected, { rows, cols });
      const dst = new Uint16Array(cols * rows);
      await k.fp32ToFp16TransposedAsync(src, dst, { rows, cols });
      expect(firstDifference(dst, expected)).toBe(-1);
      const back = new Float32Array(rows * cols);
      const backExpected = new Float32Array(rows * cols);
      hostKernels.ts.fp16ToFp32Transposed(expected, backExpected, { rows: cols, cols: rows });
      k.fp16ToFp32Transposed(dst, back, { rows: cols, cols: rows });
      expect(firstDifference(new Uint32Array(back.buffer), new Uint32Array(backExpected.buffer))).toBe(-1);
      // Destination rows 4 KiB apart (2048 halves, 1024 floats; the native kernels stage blocks
      // through scratch when dst rows are a multiple of 1 KiB apart), partial blocks.
      const narrow = { rows: 130, cols: 300, srcRowStride: 301 };
      const wide = testFloats(129 * 301 + 300, 43);
      const staged = new Uint16Array(299 * 2048 + 130);
      const stagedExpected = new Uint16Array(staged.length);
      k.fp32ToFp16Transposed(wide, staged, { ...narrow, dstRowStride: 2048 });
      hostKernels.ts.fp32ToFp16Transposed(wide, stagedExpected, { ...narrow, dstRowStride: 2048 });
      expect(firstDifference(staged, stagedExpected)).toBe(-1);
      const unstaged = new Float32Array(129 * 1024 + 300);
      const unstagedExpected = new Float32Array(unstaged.length);
      const inverse = { rows: 300, cols: 130, srcRowStride: 2048, dstRowStride: 1024 };
      await k.fp16ToFp32TransposedAsync(staged, unstaged, inverse);
      hostKernels.ts.fp16ToFp32Transposed(staged, unstagedExpected, inverse);
      expect(
        firstDifference(new Uint32Array(unstaged.buffer), new Uint32Array(unstagedExpected.buffer)),
      ).toBe(-1);
    } finally {
      restore();
    }
  });

  it('the transposed conversions over SharedArrayBuffer views, sync and async', async () => {
    const restore = variant.enter();
    try {
      const k = variant.kernels;
      const w = new Float32Array(new SharedArrayBuffer(4 * 8), 4, 6); // [2, 3] at a byte offset
      w.set([1, 2, 3, 4, 5, 6]);
      const wt = new Uint16Array(new SharedArrayBuffer(2 * 6));
      await k.fp32ToFp16TransposedAsync(w, wt, { rows: 2, cols: 3 });
      expect([...wt]).toEqual([0x3c00, 0x4400, 0x4000, 0x4500, 0x4200, 0x4600]);
      const back = new Float32Array(new SharedArrayBuffer(4 * 6));
      k.fp16ToFp32Transposed(wt, back, { rows: 3, cols: 2 });
      expect([...back]).toEqual([1, 2, 3, 4, 5, 6]);
    } finally {
      restore();
    }
  });

  it.skipIf(variant.name === 'ts')(
    'an async transposed conversion whose dst is detached mid-run rejects with HostKernelBufferError (native only: the TS twins settle at once)',
    async () => {
      const restore = variant.enter();
      try {
        const rows = 1024;
        const cols = 2048;
        const src = new Float32Array(rows * cols).fill(1.5);
        const dst = new Uint16Array(rows * cols);
        const running = variant.kernels.fp32ToFp16TransposedAsync(src, dst, { rows, cols });
        structuredClone(dst.buffer, { transfer: [dst.buffer] }); // detaches dst while the kernel runs
        await expect(running).rejects.toMatchObject({
          name: 'HostKernelBufferError',
          code: 'ERR_ANE_BRIDGE_DETACHED',
          message: expect.stringMatching(/^fp32ToFp16TransposedAsync: dst was detached/),
        });
      } finally {
        restore();
      }
    },
  );

  it('rejects mismatched lengths and blocks that leave the buffers', () => {
    within(variant, (k) => {
      expect(() => k.fp32ToFp16(new Float32Array(4), new Uint16Array(3))).toThrow(
        /fp32ToFp16: dst has 3 elements, expected 4/,
      );
      expect(() => k.fp16ToFp32(new Uint16Array(4), new Float32Array(5))).toThrow(RangeError);
      expect(() =>
        k.fp32ToFp16Strided(new Float32Array(10), new Uint16Array(10), { rows: 2, cols: 5, dstOffset: 1 }),
      ).toThrow(/dst has 10 elements, needs at least 11/);
      expect(() =>
        k.fp32ToFp16Strided(new Float32Array(10), new Uint16Array(10), { rows: 2, cols: 5, srcRowStride: 4 }),
      ).toThrow(/rows would overlap/);
      expect(() =>
        k.fp32ToFp16Strided(new Float32Array(10), new Uint16Array(10), { rows: 1.5, cols: 5 }),
      ).toThrow(/rows must be a non-negative integer/);
    });
  });
});
