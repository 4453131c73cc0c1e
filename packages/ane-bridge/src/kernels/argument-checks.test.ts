/**
 * Issue 10, defect 6: the TS twins must refuse exactly what the native kernels refuse, with the
 * same error class and message. Every kernel entry point (sync and async) is called with each bad
 * argument under both implementations; both must throw (reject), and identically. Without the addon
 * the native column is skipped (visibly, by the test name) but the TS twins must still throw.
 *
 * Also here: empty work returns at once (a 2^52-row block of 0 columns used to spin for ever in the
 * twins), and views of Node Buffers and SharedArrayBuffers work the same in both.
 */
import { describe, expect, it } from 'vitest';
import { HostKernelBufferError } from './checks';
import { type HostKernelName, type HostKernelSet, hostKernels } from './index';

// Node 20's lib typings predate resizable and growable buffers (the runtime has them).
const ResizableArrayBuffer = ArrayBuffer as unknown as new (
  bytes: number,
  options: { maxByteLength: number },
) => ArrayBuffer;
const GrowableSharedArrayBuffer = SharedArrayBuffer as unknown as new (
  bytes: number,
  options: { maxByteLength: number },
) => SharedArrayBuffer;
type ErrorClass = abstract new (...args: never[]) => Error;

const native = hostKernels.native;
const implementations: Array<[string, HostKernelSet]> = [['ts', hostKernels.ts]];
if (native !== null) implementations.push(['native', native]);

type Kind = 'f32' | 'u16' | 'i32' | 'count' | 'number' | 'boolean' | 'options' | 'block' | 'other';

/** A valid call of each kernel, and the kind of each argument. */
interface Signature {
  args: () => unknown[];
  kinds: Kind[];
  /** Options objects that are invalid for this kernel (beyond the generic ones). */
  badOptions?: Array<[Record<string, unknown>, ErrorClass]>;
}

const adamOptions = {
  lr: 1e-3,
  beta1: 0.9,
  beta2: 0.999,
  eps: 1e-8,
  weightDecay: 0.01,
  step: 1,
  biasCorrection: true,
};
const lionOptions = { lr: 1e-4, beta1: 0.9, beta2: 0.99, weightDecay: 0 };
const sgdOptions = { lr: 0.1, momentum: 0.9, dampening: 0, nesterov: false, weightDecay: 0, firstStep: true };
const f32 = (n: number) => new Float32Array(n).fill(0.5);

const SIGNATURES: Record<HostKernelName, Signature> = {
  sgemm: {
    args: () => [false, false, 2, 2, 2, 1, f32(4), 2, f32(4), 2, 0, f32(4), 2],
    kinds: [
      'boolean',
      'boolean',
      'count',
      'count',
      'count',
      'number',
      'f32',
      'count',
      'f32',
      'count',
      'number',
      'f32',
      'count',
    ],
  },
  fp32ToFp16: {
    args: () => [f32(3), new Uint16Array(3), { saturate: false }],
    kinds: ['f32', 'u16', 'options'],
  },
  fp16ToFp32: { args: () => [new Uint16Array(3), f32(3)], kinds: ['u16', 'f32'] },
  fp32ToFp16Strided: {
    args: () => [f32(6), new Uint16Array(6), { rows: 2, cols: 3 }, {}],
    kinds: ['f32', 'u16', 'block', 'options'],
  },
  fp16ToFp32Strided: {
    args: () => [new Uint16Array(6), f32(6), { rows: 2, cols: 3 }],
    kinds: ['u16', 'f32', 'block'],
  },
  fp32ToFp16Transposed: {
    args: () => [f32(6), new Uint16Array(6), { rows: 2, cols: 3 }, {}],
    kinds: ['f32', 'u16', 'block', 'options'],
  },
  fp16ToFp32Transposed: {
    args: () => [new Uint16Array(6), f32(6), { rows: 2, cols: 3 }],
    kinds: ['u16', 'f32', 'block'],
  },
  sgdUpdate: {
    args: () => [f32(4), f32(4), f32(4), { ...sgdOptions }, new Uint16Array(4)],
    kinds: ['f32', 'f32', 'f32', 'options', 'u16'],
    badOptions: [
      [{ ...sgdOptions, nesterov: 'no' }, TypeError],
      [{ ...sgdOptions, momentum: undefined }, TypeError],
    ],
  },
  adamUpdate: {
    args: () => [f32(4), f32(4), f32(4), f32(4), { ...adamOptions }, new Uint16Array(4)],
    kinds: ['f32', 'f32', 'f32', 'f32', 'options', 'u16'],
    badOptions: [
      [{ ...adamOptions, step: 0 }, RangeError],
      [{ ...adamOptions, biasCorrection: 1 }, TypeError],
    ],
  },
  adamwUpdate: {
    args: () => [f32(4), f32(4), f32(4), f32(4), { ...adamOptions }, new Uint16Array(4)],
    kinds: ['f32', 'f32', 'f32', 'f32', 'options', 'u16'],
    badOptions: [
      [{ ...adamOptions, step: 1.5 }, RangeError],
      [{ ...adamOptions, eps: Number.POSITIVE_INFINITY }, RangeError],
    ],
  },
  lionUpdate: {
    args: () => [f32(4), f32(4), f32(4), { ...lionOptions }, new Uint16Array(4)],
    kinds: ['f32', 'f32', 'f32', 'options', 'u16'],
    badOptions: [[{ ...lionOptions, beta2: '0.99' }, TypeError]],
  },
  sumOfSquares: { args: () => [f32(4)], kinds: ['f32'] },
  rmsnormForward: {
    args: () => [f32(6), f32(3), f32(6), f32(2), 2, 3, 1e-5],
    kinds: ['f32', 'f32', 'f32', 'f32', 'count', 'count', 'number'],
  },
  rmsnormBackward: {
    args: () => [f32(6), f32(2), f32(6), f32(6), f32(2), f32(3), 2, 3],
    kinds: ['f32', 'f32', 'f32', 'f32', 'f32', 'f32', 'count', 'count'],
  },
  softmaxCrossEntropyForward: {
    args: () => [f32(3), f32(12), f32(12), new Int32Array([0, 3, -1]), 4, 3],
    kinds: ['f32', 'f32', 'f32', 'i32', 'count', 'count'],
  },
  softmaxCrossEntropyBackward: {
    args: () => [f32(12), f32(12), new Int32Array([0, 3, -1]), f32(3), 4, 3],
    kinds: ['f32', 'f32', 'i32', 'f32', 'count', 'count'],
  },
  // The logits may also be fp16 bits (rowwise.test.ts): a Uint16Array is no wrong type for them.
  softmaxCrossEntropyStats: {
    args: () => [f32(3), f32(3), f32(3), f32(12), new Int32Array([0, 3, -1]), 4, 3],
    kinds: ['f32', 'f32', 'f32', 'f32', 'i32', 'count', 'count'],
  },
  softmaxCrossEntropyGrad: {
    args: () => [f32(12), f32(12), f32(3), f32(3), new Int32Array([0, 3, -1]), f32(3), 4, 3],
    kinds: ['f32', 'f32', 'f32', 'f32', 'i32', 'f32', 'count', 'count'],
  },
  embeddingForward: {
    args: () => [f32(6), f32(8), new Int32Array([0, 3, 1]), 4, 2, 3],
    kinds: ['f32', 'f32', 'i32', 'count', 'count', 'count'],
  },
  embeddingBackward: {
    args: () => [f32(8), f32(6), new Int32Array([0, 3, 1]), 4, 2, 3],
    kinds: ['f32', 'f32', 'i32', 'count', 'count', 'count'],
  },
  causalSoftmaxForward: {
    args: () => [f32(8), f32(8), 2, 2, 2, 0.5],
    kinds: ['f32', 'f32', 'count', 'count', 'count', 'number'],
  },
  causalSoftmaxBackward: {
    args: () => [f32(8), f32(8), f32(8), 2, 2, 2, 0.5],
    kinds: ['f32', 'f32', 'f32', 'count', 'count', 'count', 'number'],
  },
};

function withFakeLength<T extends Float32Array | Uint16Array | Int32Array>(array: T, length: number): T {
  Object.defineProperty(array, 'length', { value: length });
  return array;
}

function resizableView(kind: 'f32' | 'u16' | 'i32', length: number): Float32Array | Uint16Array | Int32Array {
  const Type = kind === 'f32' ? Float32Array : kind === 'u16' ? Uint16Array : Int32Array;
  const bytes = length * Type.BYTES_PER_ELEMENT;
  return new Type(new ResizableArrayBuffer(bytes, { maxByteLength: bytes * 2 + 8 }));
}

/** Bad values for an argument of `kind` (the valid one is `good`), each with the error class it must raise. */
function badValues(kind: Kind, good: unknown, signature: Signature): Array<[string, unknown, ErrorClass]> {
  switch (kind) {
    case 'f32':
    case 'u16':
    case 'i32': {
      const array = good as Float32Array;
      const wrongType = kind === 'f32' ? new Float64Array(array.length) : new Float32Array(array.length);
      return [
        [wrongType.constructor.name, wrongType, TypeError],
        ['a plain array', Array.from(array), TypeError],
        ['a string', 'abcd', TypeError],
        ['an object with a length', { length: array.length }, TypeError],
        ['a fake length', withFakeLength(array.slice(), array.length + 100), TypeError],
        ['a resizable buffer', resizableView(kind, array.length), HostKernelBufferError],
      ];
    }
    case 'count':
      return [
        ['a string', '2', TypeError],
        ['undefined', undefined, TypeError],
        ['-1', -1, RangeError],
        ['1.5', 1.5, RangeError],
        ['2^53', 2 ** 53, RangeError],
      ];
    case 'number':
      return [
        ['a string', '1', TypeError],
        ['undefined', undefined, TypeError],
        ['null', null, TypeError],
      ];
    case 'boolean':
      return [
        ['1', 1, TypeError],
        ['a string', 'yes', TypeError],
      ];
    case 'options': {
      const options = good as Record<string, unknown>;
      const cases: Array<[string, unknown, ErrorClass]> = [
        ['null', null, TypeError],
        ['a string', 'fast', TypeError],
      ];
      if (Object.keys(options).length > 1) {
        cases.push(['{}', {}, TypeError], ['lr NaN', { ...options, lr: Number.NaN }, RangeError]);
        for (const [bad, errorClass] of signature.badOptions ?? []) {
          const key = Object.keys(bad).find((k) => bad[k] !== options[k]) as string;
          cases.push([`${key} ${String(bad[key])}`, bad, errorClass]);
        }
      } else {
        cases.push(['saturate 1', { saturate: 1 }, TypeError]);
      }
      return cases;
    }
    case 'block':
      return [
        ['null', null, TypeError],
        ['{ rows } only', { rows: 2 }, TypeError],
        ['rows -1', { rows: -1, cols: 3 }, RangeError],
        ['cols "3"', { rows: 2, cols: '3' }, TypeError],
      ];
    default:
      return [];
  }
}

function outcome(run: () => unknown): { threw: false } | { threw: true; error: Error } {
  try {
    run();
    return { threw: false };
  } catch (error) {
    return { threw: true, error: error as Error };
  }
}

async function asyncOutcome(
  run: () => Promise<unknown>,
): Promise<{ threw: false } | { threw: true; error: Error }> {
  try {
    await run();
    return { threw: false };
  } catch (error) {
    return { threw: true, error: error as Error };
  }
}

const cases = (Object.keys(SIGNATURES) as HostKernelName[]).flatMap((name) => {
  const signature = SIGNATURES[name];
  const good = signature.args();
  return signature.kinds.flatMap((kind, index) =>
    badValues(kind, good[index], signature).map(([label, value, errorClass]) => ({
      name,
      index,
      label,
      value,
      errorClass,
    })),
  );
});

describe('host kernels refuse bad arguments identically in the TS twins and the native kernels', () => {
  it('every kernel accepts its valid call in both implementations (the table is sound)', () => {
    for (const [, kernels] of implementations) {
      for (const name of Object.keys(SIGNATURES) as HostKernelName[]) {
        const fn = kernels[name] as (...args: unknown[]) => unknown;
        expect(() => fn(...SIGNATURES[name].args())).not.toThrow();
      }
    }
  });

  it.each(cases)('$name: argument $index as $label', async ({ name, index, value, errorClass }) => {
    const results = [];
    for (const [implementation, kernels] of implementations) {
      const args = SIGNATURES[name].args();
      args[index] = value;
      const sync = outcome(() => (kernels[name] as (...a: unknown[]) => unknown)(...args));
      const asyncArgs = SIGNATURES[name].args();
      asyncArgs[index] = value;
      const run = kernels[`${name}Async`] as (...a: unknown[]) => Promise<unknown>;
      const promised = await asyncOutcome(() => run(...asyncArgs));
      for (const result of [sync, promised]) {
        expect(result.threw, `${implementation} ${name} did not refuse it`).toBe(true);
        if (!result.threw) continue;
        expect(result.error).toBeInstanceOf(errorClass);
        expect(result.error.message).toMatch(new RegExp(`^${name}: `));
        results.push({ implementation, type: result.error.constructor, message: result.error.message });
      }
    }
    // Every implementation, sync and async, gives the first one's class and message.
    for (const result of results) {
      expect({ type: result.type, message: result.message }).toEqual({
        type: results[0]?.type,
        message: results[0]?.message,
      });
    }
  });

  it.skipIf(native === null)('compares with the native kernels (skipped: the addon is not built)', () => {
    expect(implementations.map(([name]) => name)).toEqual(['ts', 'native']);
  });

  it('refuses C sharing memory with A or B in sgemm, the same way in both', () => {
    const messages = implementations.map(([, k]) => {
      const A = new Float32Array([1, 2, 3, 4]);
      const identity = new Float32Array([1, 0, 0, 1]);
      const run = () => k.sgemm(false, false, 2, 2, 2, 1, A, 2, identity, 2, 0, A, 2);
      expect(run).toThrow(RangeError);
      expect([...A]).toEqual([1, 2, 3, 4]); // nothing was written
      const shared = new Float32Array(8);
      // Disjoint halves of one buffer are fine: C = [[1, 2], [3, 4]] * I.
      shared.set([1, 2, 3, 4]);
      k.sgemm(false, false, 2, 2, 2, 1, shared.subarray(0, 4), 2, identity, 2, 0, shared.subarray(4), 2);
      expect([...shared.subarray(4)]).toEqual([1, 2, 3, 4]);
      return outcome(run);
    });
    for (const result of messages) expect(result).toEqual(messages[0]);
    expect(messages[0]?.threw && messages[0].error.message).toMatch(/sgemm: C overlaps A in memory/);
  });

  it('transposed conversions check both blocks with the transposed extents, the same way in both', async () => {
    // rows x cols = 2 x 3: src spans (rows-1)*srcRowStride + cols, dst (cols-1)*dstRowStride + rows.
    const refusals: Array<[string, () => unknown, ErrorClass, RegExp]> = [];
    for (const [, k] of implementations) {
      const half = (n: number) => new Uint16Array(n);
      refusals.push(
        [
          'dst 1 short',
          () => k.fp32ToFp16Transposed(f32(6), half(5), { rows: 2, cols: 3 }),
          RangeError,
          /^fp32ToFp16Transposed: dst has 5 elements, needs at least 6 \(dstOffset \+ \(cols-1\)\*dstRowStride \+ rows\)$/,
        ],
        [
          'dst stride below rows',
          () => k.fp32ToFp16Transposed(f32(6), half(6), { rows: 2, cols: 3, dstRowStride: 1 }),
          RangeError,
          /^fp32ToFp16Transposed: dstRowStride 1 is less than rows 2 \(dst holds the block transposed\); rows would overlap$/,
        ],
        [
          'dst offset past the end',
          () => k.fp16ToFp32Transposed(half(6), f32(10), { rows: 2, cols: 3, dstOffset: 1, dstRowStride: 4 }),
          RangeError,
          /^fp16ToFp32Transposed: dst has 10 elements, needs at least 11 \(dstOffset \+ \(cols-1\)\*dstRowStride \+ rows\)$/,
        ],
        [
          'src stride too long',
          () => k.fp16ToFp32Transposed(half(6), f32(6), { rows: 2, cols: 3, srcRowStride: 4 }),
          RangeError,
          /^fp16ToFp32Transposed: src has 6 elements, needs at least 7 \(srcOffset \+ \(rows-1\)\*srcRowStride \+ cols\)$/,
        ],
        [
          'src and dst share memory',
          () => {
            const buffer = new ArrayBuffer(64);
            return k.fp32ToFp16Transposed(new Float32Array(buffer, 0, 6), new Uint16Array(buffer, 16, 6), {
              rows: 2,
              cols: 3,
            });
          },
          RangeError,
          /^fp32ToFp16Transposed: dst overlaps src in memory/,
        ],
      );
    }
    for (const [label, run, errorClass, pattern] of refusals) {
      const result = outcome(run);
      expect(result.threw, label).toBe(true);
      if (result.threw) {
        expect(result.error, label).toBeInstanceOf(errorClass);
        expect(result.error.message, label).toMatch(pattern);
      }
    }
    // Disjoint views of one buffer are fine; a 1-wide dst needs no stride at all (cols = 1).
    for (const [, k] of implementations) {
      const buffer = new ArrayBuffer(64);
      const src = new Float32Array(buffer, 0, 6);
      src.set([1, 2, 3, 4, 5, 6]);
      const dst = new Uint16Array(buffer, 24, 6);
      await k.fp32ToFp16TransposedAsync(src, dst, { rows: 2, cols: 3 });
      expect([...dst]).toEqual([0x3c00, 0x4400, 0x4000, 0x4500, 0x4200, 0x4600]);
      const column = new Float32Array(3);
      k.fp16ToFp32Transposed(new Uint16Array([0x3c00, 0x4000, 0x4200]), column, {
        rows: 3,
        cols: 1,
        dstRowStride: 0,
      });
      expect([...column]).toEqual([1, 2, 3]);
    }
  });

  it('adamwUpdate(…, {}) throws before writing (it used to write NaN into params)', () => {
    for (const [, k] of implementations) {
      const params = new Float32Array([1, 2]);
      expect(() =>
        k.adamwUpdate(params, new Float32Array(2), new Float32Array(2), new Float32Array(2), {} as never),
      ).toThrow(new TypeError('adamwUpdate: options.lr must be a number, got undefined'));
      expect([...params]).toEqual([1, 2]);
    }
  });
});

describe('empty work returns at once in both implementations', () => {
  it('a 2^52 x 0 block, a 2^52-word vocabulary over no positions', async () => {
    for (const [, k] of implementations) {
      const none = new Float32Array(0);
      k.fp32ToFp16Strided(none, new Uint16Array(0), { rows: 2 ** 52, cols: 0 });
      k.fp16ToFp32Strided(new Uint16Array(0), none, { rows: 0, cols: 2 ** 52 });
      await k.fp32ToFp16StridedAsync(none, new Uint16Array(0), { rows: 2 ** 52, cols: 0 });
      k.fp32ToFp16Transposed(none, new Uint16Array(0), { rows: 2 ** 52, cols: 0 });
      k.fp16ToFp32Transposed(new Uint16Array(0), none, { rows: 0, cols: 2 ** 52 });
      await k.fp16ToFp32TransposedAsync(new Uint16Array(0), none, { rows: 0, cols: 2 ** 52 });
      k.softmaxCrossEntropyForward(none, none, none, new Int32Array(0), 2 ** 52, 0);
      k.softmaxCrossEntropyBackward(none, none, new Int32Array(0), none, 2 ** 52, 0);
      k.causalSoftmaxForward(none, none, 2 ** 52, 0, 0, 1);
      k.embeddingForward(none, none, new Int32Array([5, 7]), 2 ** 52, 0, 2);
      k.sgemm(false, false, 2 ** 52, 0, 3, 1, none, 3, none, 0, 0, none, 0);
      k.rmsnormBackward(none, none, none, none, none, none, 0, 0);
    }
  });
});

describe('views of Node Buffers and SharedArrayBuffers', () => {
  it('typed arrays at a non-zero byteOffset of a Buffer convert the same in both', () => {
    // Buffer.from copies into the shared pool, so its byteOffset is usually not 0; a Float32Array
    // view needs a multiple of 4 (the constructor throws otherwise, so an unaligned view cannot
    // reach a kernel), and a Uint16Array one a multiple of 2.
    const bytes = Buffer.alloc(64 + 4);
    const values = [1, -2.5, 65520, 1e-7, Number.NaN, 3];
    const f = new Float32Array(bytes.buffer, bytes.byteOffset + 4, values.length);
    f.set(values);
    expect(() => new Float32Array(bytes.buffer, bytes.byteOffset + 2, 1)).toThrow(RangeError);
    expect(() => new Uint16Array(bytes.buffer, bytes.byteOffset + 1, 1)).toThrow(RangeError);
    const outputs = implementations.map(([, k]) => {
      const half = Buffer.alloc(2 * values.length + 2);
      const h = new Uint16Array(half.buffer, half.byteOffset + 2, values.length);
      k.fp32ToFp16(f, h);
      const back = new Float32Array(values.length);
      k.fp16ToFp32(h, back);
      return { bits: [...h], back: [...back], sum: k.sumOfSquares(f.subarray(0, 2)) };
    });
    expect(outputs[0]).toEqual({
      bits: [0x3c00, 0xc100, 0x7c00, 0x0002, 0x7e00, 0x4200],
      back: [1, -2.5, Number.POSITIVE_INFINITY, 2 ** -23, Number.NaN, 3],
      sum: 7.25,
    });
    for (const output of outputs) expect(output).toEqual(outputs[0]);
  });

  it('SharedArrayBuffer views (growable ones too) are accepted by both, sync and async', async () => {
    for (const [, k] of implementations) {
      const growable = new GrowableSharedArrayBuffer(16, { maxByteLength: 64 });
      const x = new Float32Array(growable, 4, 3);
      x.set([1, 2, 2]);
      expect(k.sumOfSquares(x)).toBe(9);
      await expect(k.sumOfSquaresAsync(x)).resolves.toBe(9);
      const half = new Uint16Array(new SharedArrayBuffer(6));
      await k.fp32ToFp16Async(x, half);
      expect([...half]).toEqual([0x3c00, 0x4000, 0x4000]);
    }
  });
});
