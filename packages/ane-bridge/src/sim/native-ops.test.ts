import { afterEach, describe, expect, it } from 'vitest';
import { hostSimdLevel, setHostSimdLevel, sgemm } from '../kernels';
import { nativeAddon } from '../native/loader';
import { saturateToInfinity } from './behaviours';
import { gatherCopy, planBroadcast, planStridedWalk } from './layout';
import { runSimOp, SimOpsMismatchError, setSimOpsMode, simOpsMode } from './native-ops';
import { roundToFp16 } from './numerics';
import type { BinaryArithmeticOp, UnaryOp } from './ops/elementwise';
import { BINARY_ARITHMETIC_OPS, binaryArithmetic, unary } from './ops/elementwise';
import { matmul, planMatmul } from './ops/matmul';
import { concat, planConcat, planSplit, split } from './ops/movement';
import { planAxis, planReduction, reduce, reducedShape, softmax } from './ops/reduce';
import type { FloatTensor } from './tensor';
import { fp16Values } from './test-support.test-helper';

const native = nativeAddon().addon?.simOps !== undefined;
const initialMode = simOpsMode();
afterEach(() => {
  setSimOpsMode(initialMode);
});

function tensor(dtype: 'fp16' | 'fp32', shape: number[]): FloatTensor {
  return { dtype, shape, data: new Float32Array(shape.reduce((a, b) => a * b, 1)) };
}

function bits(values: Float32Array): number[] {
  return [...new Uint32Array(values.buffer, values.byteOffset, values.length)].map((b, i) =>
    Number.isNaN(values[i]) ? -1 : b,
  );
}

/** Runs `op` once per mode into fresh outputs and returns both results' bits. */
function bothModes(run: () => Float32Array): { ts: number[]; native: number[] } {
  setSimOpsMode('ts');
  const ts = bits(run());
  setSimOpsMode('native');
  const nativeBits = bits(run());
  return { ts, native: nativeBits };
}

describe.skipIf(!native)('native simulator ops equal their TS twins bit for bit (NaN payloads aside)', () => {
  const shapes: [number[], number[], number[]][] = [
    [
      [3, 70],
      [3, 70],
      [3, 70],
    ],
    [
      [1, 8, 1, 300],
      [1, 8, 1, 1],
      [1, 8, 1, 300],
    ],
    [
      [1, 1, 1, 300],
      [1, 8, 1, 300],
      [1, 8, 1, 300],
    ],
    [
      [4, 1],
      [1, 5],
      [4, 5],
    ],
    [[], [2, 3], [2, 3]],
    [[64, 600], [600], [64, 600]],
  ];
  for (const op of BINARY_ARITHMETIC_OPS as readonly BinaryArithmeticOp[]) {
    for (const dtype of ['fp16', 'fp32'] as const) {
      it(`${op} ${dtype} with broadcasting`, () => {
        shapes.forEach(([xShape, yShape, outShape], k) => {
          const x = fp16Values(
            xShape.reduce((a, b) => a * b, 1),
            11 + k,
          );
          const y = fp16Values(
            yShape.reduce((a, b) => a * b, 1),
            97 + k,
          ).reverse();
          const layout = planBroadcast(outShape, [xShape, yShape]);
          const result = bothModes(() => {
            const out = tensor(dtype, outShape);
            binaryArithmetic(op, out, x, y, layout);
            return out.data;
          });
          expect(result.native).toEqual(result.ts);
        });
      });
    }
  }

  const unaryOps: UnaryOp[] = ['exp', 'log', 'sqrt', 'rsqrt', 'inverse', 'tanh', 'sigmoid', 'silu', 'relu'];
  for (const op of unaryOps) {
    it(`${op}, fp16 and fp32, with an epsilon`, () => {
      const x = fp16Values(5000, 3);
      for (const dtype of ['fp16', 'fp32'] as const) {
        for (const epsilon of [undefined, 1e-5]) {
          const result = bothModes(() => {
            const out = tensor(dtype, [x.length]);
            unary(op, out, x, epsilon === undefined ? {} : { epsilon });
            return out.data;
          });
          expect(result.native).toEqual(result.ts);
        }
      }
    });
  }

  it('rounds every sampled binary32 pattern to fp16 as ane-ir/mil does (normal, subnormal, overflow, NaN)', () => {
    const patterns = new Uint32Array(1 << 20);
    for (let i = 0; i < patterns.length; i++) patterns[i] = Math.imul(i, 4099) >>> 0;
    // Every rounding boundary of the top of the range and of the subnormal halves.
    patterns.set([
      0x477fefff, 0x477ff000, 0x477ff001, 0x33000000, 0x33000001, 0x387fe000, 0x387ff000, 0x7f800000,
      0x7fc00001,
    ]);
    const values = new Float32Array(patterns.buffer);
    const result = bothModes(() => {
      const copy = values.slice();
      roundToFp16(copy);
      return copy;
    });
    expect(result.native).toEqual(result.ts);
    // NaN payloads are kept, as the twin keeps them.
    setSimOpsMode('native');
    const nan = new Float32Array(new Uint32Array([0x7fc00123, 0xffa00001]).buffer);
    roundToFp16(nan);
    expect([...new Uint32Array(nan.buffer)]).toEqual([0x7fc00123, 0xffa00001]);
  });

  it('saturates to infinity past a threshold (inclusive and not)', () => {
    const x = fp16Values(4000, 5);
    // Values at and beside a float threshold, both signs, in the vector body and the scalar tail.
    const edges = [4094, -4094, Math.fround(4094.0002), -Math.fround(4094.0002), 4093.5, -0, Number.NaN];
    edges.forEach((v, i) => {
      x[17 * i] = v;
      x[x.length - 1 - i] = v;
    });
    for (const inclusive of [true, false]) {
      for (const threshold of [32759, 4094, 0.1]) {
        const result = bothModes(() => {
          const copy = x.slice();
          saturateToInfinity(copy, threshold, inclusive);
          return copy;
        });
        expect(result.native).toEqual(result.ts);
      }
    }
  });

  it('gathers transposes, slices and broadcasts of 4- and 1-byte elements', () => {
    const walks = [
      planStridedWalk([300, 70], [[1, 300]]), // a transpose
      planStridedWalk([5, 40], [[100, 2]], [7]), // a strided slice
      planStridedWalk([4, 200], [[0, 1]]), // a broadcast
      planStridedWalk([2, 3, 50], [[150, 1, 3]]),
    ];
    for (const walk of walks) {
      const size = walk.rows * walk.inner;
      for (const make of [
        (n: number) => new Float32Array(n).map((_, i) => i * 0.5 - 3),
        (n: number) => new Int32Array(n).map((_, i) => i * 7 - 11),
        (n: number) => new Int8Array(n).map((_, i) => (i % 200) - 100),
        (n: number) => new Uint8Array(n).map((_, i) => i % 2),
      ]) {
        const src = make(30000);
        setSimOpsMode('ts');
        const ts = make(size);
        gatherCopy(ts, src as typeof ts, walk);
        setSimOpsMode('native');
        const out = make(size);
        gatherCopy(out, src as typeof out, walk);
        expect([...out]).toEqual([...ts]);
      }
    }
  });

  it('transposes the heads of [H, D, T] values in register tiles, every bit kept, split over threads or not', () => {
    // Rows that start one element apart go through the tiled transpose (16, 8 and scalar edges);
    // a run shorter than 8 rows, or rows shorter than 8 values, row by row.
    const cases: [number[], number[]][] = [
      [
        [6, 256, 48],
        [48 * 256, 1, 256],
      ], // a Stories15M layer's heads: 73,728 values, split over the pool
      [
        [3, 131, 37],
        [37 * 131, 1, 131],
      ], // edges of every tile size
      [
        [2, 5, 40],
        [200, 1, 5],
      ], // runs of 5 rows
      [
        [6, 256, 4],
        [1024, 1, 256],
      ], // rows of 4 values
    ];
    for (const [shape, strides] of cases) {
      const walk = planStridedWalk(shape, [strides]);
      const size = walk.rows * walk.inner;
      const bits = new Int32Array(size).map((_, i) => Math.imul(i + 1, 2654435761));
      bits[3] = 0x7fa00001; // a signalling NaN's payload
      bits[size - 1] = 0xffc12345 | 0; // a quiet NaN's, negative
      setSimOpsMode('ts');
      const ts = new Int32Array(size);
      gatherCopy(ts, bits, walk);
      setSimOpsMode('native');
      const out = new Int32Array(size);
      gatherCopy(out, bits, walk);
      expect(out).toEqual(ts);
      // As floats too, NaN payloads and all (the TS twin would quiet the signalling NaN).
      const floats = new Float32Array(size);
      gatherCopy(floats, new Float32Array(bits.buffer), walk);
      expect(new Int32Array(floats.buffer)).toEqual(ts);
      // Independent of both: element [h, t, k] of the result is source [h, k, t].
      const [, T, D] = shape as [number, number, number];
      expect(out[(1 * T + 2) * D + 3]).toBe(bits[strides[0]! + 2 + 3 * strides[2]!]);
    }
  });

  it('softmax over the last axis and over a middle axis, with -inf and NaN rows', () => {
    const x = fp16Values(6 * 40 * 33, 9).map((v) => (Number.isFinite(v) ? v / 1000 : v));
    x.fill(Number.NEGATIVE_INFINITY, 0, 40); // a fully masked row: NaN, as the twin gives
    for (const [shape, axis] of [
      [[6 * 33, 40], -1],
      [[6, 40, 33], 1],
      [[1, 6 * 40, 1, 33], 1],
      [[6, 40, 33], 0],
    ] as [number[], number][]) {
      for (const dtype of ['fp16', 'fp32'] as const) {
        const result = bothModes(() => {
          const out = tensor(dtype, shape);
          softmax(out, x, planAxis(shape, axis));
          return out.data;
        });
        expect(result.native).toEqual(result.ts);
      }
    }
  });

  it('softmax of causally masked scores (-inf and -1e4 masks, ±0, +inf, NaN) on every SIMD path', () => {
    // Blocks of masked scores skip exp and the division natively: they must come out as the
    // twin's zeros, and a NaN or +inf beside them as the twin has it.
    const rows = 96;
    const length = 77; // neither a multiple of 8 nor of 4: ragged tails on every path
    const x = new Float32Array(rows * length);
    const values = fp16Values(rows * length, 31);
    for (let r = 0; r < rows; r++) {
      for (let j = 0; j < length; j++) {
        const masked = j > r % length;
        const fill = r % 3 === 0 ? -10000 : Number.NEGATIVE_INFINITY;
        const v = values[r * length + j]!;
        x[r * length + j] = masked ? fill : Number.isFinite(v) ? v / 512 : 0;
      }
    }
    x[5 * length + 2] = Number.NaN;
    x[9 * length] = Number.POSITIVE_INFINITY;
    x.fill(0, 12 * length, 12 * length + 4);
    x[12 * length + 1] = -0; // a ±0 tie for the maximum
    x.fill(Number.NEGATIVE_INFINITY, 20 * length, 21 * length); // a fully masked row: NaN
    const shape = [rows, length];
    const original = hostSimdLevel();
    try {
      for (const level of ['scalar', 'avx2-fma', 'avx512', 'neon'] as const) {
        if (!setHostSimdLevel(level)) continue;
        for (const dtype of ['fp16', 'fp32'] as const) {
          const soft = bothModes(() => {
            const out = tensor(dtype, shape);
            softmax(out, x, planAxis(shape, -1));
            return out.data;
          });
          expect(soft.native, `softmax ${dtype} on ${level}`).toEqual(soft.ts);
        }
      }
    } finally {
      if (original !== null) setHostSimdLevel(original);
    }
  });

  it('reductions over the last axis, a middle axis and non-adjacent axes, every native kind', () => {
    const x = fp16Values(6 * 40 * 33, 21).map((v) => (Number.isFinite(v) ? v / 64 : v));
    const kinds = ['sum', 'mean', 'sum_square', 'l1_norm', 'l2_norm', 'max', 'min', 'prod'] as const;
    for (const kind of kinds) {
      for (const [shape, axes] of [
        [[6, 40, 33], [2]],
        [[6, 40, 33], [1]],
        [[1, 6 * 40, 1, 33], [1]],
        [
          [6, 40, 33],
          [0, 2],
        ],
      ] as [number[], number[]][]) {
        for (const dtype of ['fp16', 'fp32'] as const) {
          const geometry = planReduction(shape, axes);
          const result = bothModes(() => {
            const out = tensor(dtype, reducedShape(shape, axes, false));
            reduce(kind, out, x, geometry);
            return out.data;
          });
          expect(result.native, `${kind} over [${axes}] of [${shape}]`).toEqual(result.ts);
        }
      }
    }
  });

  it('last-axis softmax and reductions over many rows (reduced 8 side by side, split over threads), with ragged tails', () => {
    // 3003 rows of 47 (141k elements: past the parallel threshold), 205 rows: neither a multiple of 8.
    for (const [rows, length] of [
      [3003, 47],
      [205, 33],
      [5, 256],
    ] as const) {
      const x = fp16Values(rows * length, rows).map((v) => (Number.isFinite(v) ? v / 256 : v));
      x.fill(Number.NEGATIVE_INFINITY, length, 2 * length); // a masked row beside finite ones
      const shape = [rows, length];
      for (const dtype of ['fp16', 'fp32'] as const) {
        const soft = bothModes(() => {
          const out = tensor(dtype, shape);
          softmax(out, x, planAxis(shape, -1));
          return out.data;
        });
        expect(soft.native, `softmax of [${shape}] ${dtype}`).toEqual(soft.ts);
        for (const kind of ['sum', 'mean', 'sum_square', 'max', 'min'] as const) {
          const geometry = planReduction(shape, [1]);
          const result = bothModes(() => {
            const out = tensor(dtype, reducedShape(shape, [1], false));
            reduce(kind, out, x, geometry);
            return out.data;
          });
          expect(result.native, `${kind} of [${shape}] ${dtype}`).toEqual(result.ts);
        }
      }
    }
  });

  it('concat (plain and interleaved) and split of 4- and 1-byte elements', () => {
    const cases: [number[][], number, boolean][] = [
      [
        [
          [6, 256, 24],
          [6, 256, 24],
        ],
        2,
        false,
      ],
      [
        [
          [2, 3, 5],
          [2, 4, 5],
          [2, 1, 5],
        ],
        1,
        false,
      ],
      [
        [
          [3, 7],
          [3, 7],
        ],
        0,
        false,
      ],
      [
        [
          [4, 6, 5],
          [4, 6, 5],
          [4, 6, 5],
        ],
        1,
        true,
      ],
    ];
    for (const [shapes, axis, interleave] of cases) {
      const { outShape, geometry } = planConcat(shapes, axis, interleave);
      const size = outShape.reduce((a, b) => a * b, 1);
      for (const make of [(n: number) => new Float32Array(n), (n: number) => new Int8Array(n)]) {
        const values = shapes.map((shape, k) =>
          make(shape.reduce((a, b) => a * b, 1)).map((_, i) => (i * 7 + k * 13) % 100),
        );
        setSimOpsMode('ts');
        const ts = make(size);
        concat(ts, values, geometry);
        setSimOpsMode('native');
        const out = make(size);
        concat(out, values, geometry);
        expect([...out]).toEqual([...ts]);
        if (!interleave) {
          const split3 = planSplit(
            outShape,
            axis,
            shapes.map((shape) => shape[axis]!),
          );
          const parts = split3.outShapes.map((shape) => make(shape.reduce((a, b) => a * b, 1)));
          split(parts, out, split3.geometry);
          expect(parts.map((p) => [...p])).toEqual(values.map((v) => [...v]));
        }
      }
    }
    const ops = nativeAddon().addon!.simOps!;
    const small = new Float32Array(4);
    expect(() => ops.copyRows(small, 0, 2, small, 0, 2, 3, 2)).toThrow(RangeError);
    expect(() => ops.copyRows(small, 0, 1, small, 0, 1, 2, 2)).toThrow(RangeError);
  });

  it('batched matmul: per-head products side by side on the pool, the bits of one sgemm per entry', () => {
    for (const [xShape, yShape, tx, ty] of [
      // 1M multiply-adds per entry, 8M in all: entries run side by side on the pool.
      [[8, 128, 64], [8, 64, 128], false, false],
      [[1, 7, 128, 64], [1, 7, 128, 64], false, true],
      [[6, 64, 128], [6, 64, 96], true, false],
      [[6, 64, 16], [6, 16, 64], false, false], // 0.4M in all: one after another
      [[1, 64, 16], [5, 16, 64], false, false], // a broadcast operand: every entry reads the same x
      [[3, 170, 170], [3, 170, 170], false, false], // entries sgemm splits itself: one after another
    ] as [number[], number[], boolean, boolean][]) {
      const x = fp16Values(
        xShape.reduce((a, b) => a * b, 1),
        31,
      ).map((v) => (Number.isFinite(v) ? v / 64 : v));
      const y = fp16Values(
        yShape.reduce((a, b) => a * b, 1),
        37,
      ).map((v) => (Number.isFinite(v) ? v / 64 : v));
      const { outShape, geometry } = planMatmul(xShape, yShape, tx, ty);
      const result = bothModes(() => {
        const out = tensor('fp16', outShape);
        matmul(out, x, y, geometry);
        return out.data;
      });
      expect(result.native, `[${xShape}]${tx ? 'ᵀ' : ''} · [${yShape}]${ty ? 'ᵀ' : ''}`).toEqual(result.ts);
    }
    // Against hand-computed values: two 1x2 · 2x1 entries.
    setSimOpsMode('native');
    const out = tensor('fp32', [2, 1, 1]);
    const { geometry } = planMatmul([2, 1, 2], [2, 2, 1], false, false);
    matmul(out, Float32Array.of(1, 2, 3, 4), Float32Array.of(5, 6, 7, 8), geometry);
    expect([...out.data]).toEqual([1 * 5 + 2 * 6, 3 * 7 + 4 * 8]);
    const ops = nativeAddon().addon!.simOps!;
    const a = new Float32Array(8);
    const offsets = Int32Array.of(0, 4);
    expect(() =>
      ops.matmul(a, a, new Float32Array(8), false, false, 2, 2, 2, 1, offsets, offsets, true, 1),
    ).toThrow(/overlaps/);
    expect(() =>
      ops.matmul(new Float32Array(8), a, a, false, false, 2, 2, 2, 1, Int32Array.of(0, 5), offsets, true, 1),
    ).toThrow(/outside x/);
    expect(() =>
      ops.matmul(new Float32Array(7), a, a, false, false, 2, 2, 2, 1, offsets, offsets, true, 1),
    ).toThrow(/too short/);
  });

  it('matmul outputs finished as the GEMM completes each block: the bits of a pass over the whole output', () => {
    const ops = nativeAddon().addon!.simOps!;
    // Several cache blocks each way (M past 192 rows, K past 384, N past 4096 columns on AVX-512),
    // ragged edges, both threads; operands scaled so that some sums pass the saturation limits.
    const [M, N, K] = [203, 4133, 401];
    const a = fp16Values(M * K, 41).map((v) => (Number.isFinite(v) ? v / 8 : v));
    const b = fp16Values(K * N, 43).map((v) => (Number.isFinite(v) ? v / 8 : v));
    a.fill(0.001, 0, 16); // two rows without NaN or inf, so that some outputs stay finite
    for (const [roundFp16, saturateAt] of [
      [true, Number.POSITIVE_INFINITY],
      [true, 16],
      [false, 16],
      [false, Number.POSITIVE_INFINITY],
    ] as [boolean, number][]) {
      const twin = new Float32Array(M * N);
      sgemm(false, false, M, N, K, 1, a, K, b, N, 0, twin, N);
      setSimOpsMode('ts');
      if (roundFp16) roundToFp16(twin, Number.isFinite(saturateAt) ? saturateAt : undefined);
      else if (Number.isFinite(saturateAt)) saturateToInfinity(twin, saturateAt, true);
      setSimOpsMode('native');
      const out = new Float32Array(M * N);
      ops.gemm(out, a, 0, K, false, b, 0, N, false, M, N, K, roundFp16, saturateAt);
      const label = `roundFp16 ${roundFp16}, saturateAt ${saturateAt}`;
      expect(bits(out), label).toEqual(bits(twin));
      // The batched op finishes each entry the same way (here one entry, and two of the top rows).
      const batched = new Float32Array(M * N);
      ops.matmul(
        batched,
        a,
        b,
        false,
        false,
        M,
        N,
        K,
        1,
        Int32Array.of(0),
        Int32Array.of(0),
        roundFp16,
        saturateAt,
      );
      expect(bits(batched), label).toEqual(bits(twin));
    }
    const finite = new Float32Array(4);
    expect(() =>
      ops.gemm(finite, a, 0, K, false, b, 0, N, false, 2, 2, 1, true, 'Infinity' as never),
    ).toThrow(/saturateAt must be a number/);
  });

  it('compare mode runs both and throws SimOpsMismatchError when they differ', () => {
    setSimOpsMode('compare');
    const out = new Float32Array(4);
    expect(() =>
      runSimOp(
        'test-op',
        out,
        () => out.fill(1),
        () => out.fill(2),
      ),
    ).toThrow(SimOpsMismatchError);
    // An in-place op starts from the same contents in both runs.
    const data = new Float32Array([1.00001, 3]);
    roundToFp16(data);
    expect([...data]).toEqual([1, 3]);
  });

  it('the native ops refuse walks and sizes outside their arrays (a RangeError, no crash)', () => {
    const ops = nativeAddon().addon!.simOps!;
    const small = new Float32Array(4);
    const offsets = Int32Array.of(0, 2);
    expect(() => ops.binary(0, small, small, small, 2, 4, 1, 1, offsets, offsets, true)).toThrow(RangeError);
    expect(() => ops.binary(0, small, small, small, 1, 4, 1, 1, Int32Array.of(-1), offsets, true)).toThrow(
      RangeError,
    );
    expect(() => ops.gather(small, small, 1, 3, 2, Int32Array.of(0))).toThrow(RangeError);
    expect(() => ops.softmax(small, small, 2, 2, 2, true)).toThrow(RangeError);
    expect(() => ops.unary(0, new Float32Array(8), small, 0, true)).toThrow(RangeError);
    expect(() => ops.binary(99, small, small, small, 1, 4, 1, 1, offsets, offsets, true)).toThrow(RangeError);
    expect(() => ops.gather(small, new Int32Array(4) as never, 1, 1, 1, Int32Array.of(0))).toThrow(TypeError);
  });
});

describe('the simulator op mode', () => {
  it('is ts without the addon, and refuses an unknown mode', () => {
    expect(() => setSimOpsMode('fast' as never)).toThrow(RangeError);
    expect(setSimOpsMode('ts')).toBe('ts');
    expect(setSimOpsMode('native')).toBe(native ? 'native' : 'ts');
  });
});

describe('profileOps', () => {
  it('times every op kind of every run, and nothing without the option', async () => {
    const { compileSimProgram } = await import('./executable');
    const program = {
      mil: `program(1.3)
{
    func main<ios18>(tensor<fp16, [1, 4, 1, 8]> x) {
        tensor<fp16, [1, 4, 1, 8]> y = exp(x = x)[name = string("y")];
        tensor<fp16, [1, 4, 1, 8]> z = add(x = y, y = x)[name = string("z")];
    } -> (z);
}`,
      weights: new Map(),
      inputs: [{ name: 'x', dtype: 'fp16' as const, shape: [1, 4, 1, 8] }],
      outputs: [{ name: 'z', dtype: 'fp16' as const, shape: [1, 4, 1, 8] }],
    };
    const profiled = compileSimProgram(program, { profileOps: true, fuseElementwise: false });
    const input = [new Uint8Array(64)];
    const output = [new Uint8Array(64)];
    profiled.run(input, output);
    profiled.run(input, output);
    const profile = profiled.opProfile();
    expect([...profile.keys()].sort()).toEqual(['(io)', 'add', 'exp']);
    expect(profile.get('exp')!.calls).toBe(2);
    expect(profile.get('(io)')!.calls).toBe(2);
    expect(compileSimProgram(program).opProfile().size).toBe(0);
    // Fused, the chain is timed as one step.
    const fused = compileSimProgram(program, { profileOps: true });
    fused.run(input, output);
    expect([...fused.opProfile().keys()].sort()).toEqual(['(io)', 'fused']);
  });
});

describe('compileSimProgram as exported', () => {
  it('refuses what is not a Program and bad options with typed errors naming them', async () => {
    const { compileSimProgram } = await import('./compile');
    const { DeviceOptionsError, InvalidProgramError } = await import('../errors');
    const program = {
      mil: `program(1.3)
{
    func main<ios18>(tensor<fp16, [1, 4, 1, 8]> x) {
        tensor<fp16, [1, 4, 1, 8]> y = exp(x = x)[name = string("y")];
    } -> (y);
}`,
      weights: new Map(),
      inputs: [{ name: 'x', dtype: 'fp16' as const, shape: [1, 4, 1, 8] }],
      outputs: [{ name: 'y', dtype: 'fp16' as const, shape: [1, 4, 1, 8] }],
    };
    expect(() => compileSimProgram(null as never)).toThrow(InvalidProgramError);
    expect(() => compileSimProgram({ ...program, weights: {} } as never)).toThrow(/weights must be a Map/);
    for (const options of [
      { inPlaceOperands: 'yes' },
      { fuseElementwise: 'no' },
      { profileOps: 1 },
      { chip: 'M9' },
      { memoryLimitBytes: -1 },
      { reduceSumAccumulation: 'fp64' },
      { fast: true },
      [],
    ]) {
      expect(() => compileSimProgram(program, options as never), JSON.stringify(options)).toThrow(
        DeviceOptionsError,
      );
    }
    // The refused value is described, not printed as [object Object].
    expect(() => compileSimProgram(program, { chip: { name: 'M4' } } as never)).toThrow(/got an Object$/);
    expect(() => compileSimProgram(program, { fuseElementwise: 'no' } as never)).toThrow(
      /got the string 'no'$/,
    );
    const executable = compileSimProgram({ program }, { chip: 'M1', profileOps: false });
    expect(executable.stepCount).toBe(1);
    expect(() => executable.run([new Float32Array(32) as never], [new Uint8Array(64)])).toThrow(
      /needs 64 bytes of dense little-endian fp16, got Float32Array/,
    );
  });
});
