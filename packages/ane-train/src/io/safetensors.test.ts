import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CheckpointError } from '../errors';
import {
  encodeSafetensors,
  readSafetensors,
  readSafetensorsFile,
  type SafetensorsInput,
  tensorToFloat32,
  writeSafetensorsFile,
} from './safetensors';

const dir = mkdtempSync(join(tmpdir(), 'ane-train-safetensors-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A file from a header (object or raw text), data bytes and optionally a lying header length. */
function raw(header: unknown, data: Uint8Array | number = 0, declaredLength?: bigint): Uint8Array {
  const text = new TextEncoder().encode(typeof header === 'string' ? header : JSON.stringify(header));
  const body = typeof data === 'number' ? new Uint8Array(data) : data;
  const out = new Uint8Array(8 + text.length + body.length);
  new DataView(out.buffer).setBigUint64(0, declaredLength ?? BigInt(text.length), true);
  out.set(text, 8);
  out.set(body, 8 + text.length);
  return out;
}

function refusal(bytes: Uint8Array): CheckpointError {
  try {
    readSafetensors(bytes, { file: 'w.safetensors' });
  } catch (error) {
    expect(error).toBeInstanceOf(CheckpointError);
    expect((error as CheckpointError).message).toContain('w.safetensors');
    expect((error as CheckpointError).details.file).toBe('w.safetensors');
    return error as CheckpointError;
  }
  throw new Error('expected a CheckpointError');
}

const f32 = (shape: number[], begin: number) => ({
  dtype: 'F32',
  shape,
  data_offsets: [begin, begin + 4 * shape.reduce((a, b) => a * b, 1)],
});

describe('safetensors encode/decode', () => {
  it('round-trips F32 exactly, F16 and BF16 to their nearest values, with metadata, in name order', () => {
    const tensors = new Map<string, SafetensorsInput>([
      ['z.weight', { dtype: 'F32', shape: [2, 3], values: Float32Array.of(1, -2.5, 3e-8, 1e30, -0, 0.1) }],
      ['a.weight', { dtype: 'F16', shape: [3], values: Float32Array.of(1, -2, 0.1) }],
      ['m.weight', { dtype: 'BF16', shape: [2], values: Float32Array.of(Math.PI, -1) }],
      ['empty', { dtype: 'F32', shape: [0, 4], values: new Float32Array(0) }],
    ]);
    const bytes = encodeSafetensors(tensors, { loss: '5.5' });
    const headerLength = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    expect(headerLength % 8).toBe(0);
    const headerText = new TextDecoder().decode(bytes.subarray(8, 8 + headerLength));
    expect(headerText).toMatch(/} *$/);
    const header = JSON.parse(headerText);
    // name order: a (6 bytes), empty (0), m (4), z (24)
    expect(header['a.weight'].data_offsets).toEqual([0, 6]);
    expect(header.empty.data_offsets).toEqual([6, 6]);
    expect(header['m.weight'].data_offsets).toEqual([6, 10]);
    expect(header['z.weight'].data_offsets).toEqual([10, 34]);
    expect(bytes.length).toBe(8 + headerLength + 34);

    const { tensors: read, metadata } = readSafetensors(bytes);
    expect(metadata).toEqual({ loss: '5.5' });
    expect(read.get('z.weight')!.shape).toEqual([2, 3]);
    expect([...tensorToFloat32(read.get('z.weight')!)]).toEqual([
      ...Float32Array.of(1, -2.5, 3e-8, 1e30, -0, 0.1),
    ]);
    // fp16(0.1) = 0x2E66 = 0.0999755859375
    expect([...tensorToFloat32(read.get('a.weight')!)]).toEqual([1, -2, 0.0999755859375]);
    // bf16(π) = 0x4049 = 3.140625
    expect([...tensorToFloat32(read.get('m.weight')!)]).toEqual([3.140625, -1]);
    expect(tensorToFloat32(read.get('empty')!).length).toBe(0);
  });

  it('decodes F16 and BF16 bit patterns to hand-computed values', () => {
    const f16 = Uint16Array.of(0x3c00, 0xc000, 0x3555, 0x7bff, 0x0001, 0x0400, 0x7c00, 0x8000);
    const bf16 = Uint16Array.of(0x3f80, 0xc040, 0x4049, 0x0001, 0xff80);
    const bytes = raw(
      {
        h: { dtype: 'F16', shape: [8], data_offsets: [0, 16] },
        b: { dtype: 'BF16', shape: [5], data_offsets: [16, 26] },
      },
      new Uint8Array([...new Uint8Array(f16.buffer), ...new Uint8Array(bf16.buffer)]),
    );
    const { tensors } = readSafetensors(bytes);
    expect([...tensorToFloat32(tensors.get('h')!)]).toEqual([
      1,
      -2,
      0.333251953125,
      65504,
      2 ** -24,
      2 ** -14,
      Number.POSITIVE_INFINITY,
      -0,
    ]);
    expect([...tensorToFloat32(tensors.get('b')!)]).toEqual([
      1,
      -3,
      3.140625,
      2 ** -133,
      Number.NEGATIVE_INFINITY,
    ]);
  });

  it('encodes BF16 rounding to nearest, ties to even', () => {
    // 1 + 2^-8 is halfway between bf16 1 (0x3F80) and 1 + 2^-7 (0x3F81): ties to the even 0x3F80;
    // 1 + 3·2^-8 is halfway between 0x3F81 and 0x3F82: ties to the even 0x3F82.
    const bytes = encodeSafetensors(
      new Map([
        [
          't',
          {
            dtype: 'BF16' as const,
            shape: [3],
            values: Float32Array.of(1 + 2 ** -8, 1 + 3 * 2 ** -8, 1 + 2 ** -8 + 2 ** -20),
          },
        ],
      ]),
    );
    const bits = new Uint16Array(bytes.slice(bytes.length - 6).buffer);
    expect([...bits]).toEqual([0x3f80, 0x3f82, 0x3f81]);
  });

  it('reads an F32 tensor that does not start 4-byte aligned (after an odd-length F16 tensor)', () => {
    const bytes = encodeSafetensors(
      new Map<string, SafetensorsInput>([
        ['a', { dtype: 'F16', shape: [3], values: Float32Array.of(1, 2, 3) }],
        ['b', { dtype: 'F32', shape: [2], values: Float32Array.of(0.1, -7) }],
      ]),
    );
    const { tensors } = readSafetensors(bytes);
    expect(tensors.get('b')!.data.byteOffset % 4).toBe(2);
    expect([...tensorToFloat32(tensors.get('b')!)]).toEqual([...Float32Array.of(0.1, -7)]);
    // the same from a Node Buffer (whose slice() is a view, not a copy)
    const buffer = Buffer.from(bytes);
    const fromBuffer = readSafetensors(buffer).tensors.get('b')!;
    expect([...tensorToFloat32(fromBuffer)]).toEqual([...Float32Array.of(0.1, -7)]);
  });

  it('refuses to encode values that do not match the shape', () => {
    expect(() =>
      encodeSafetensors(
        new Map([['t', { dtype: 'F32' as const, shape: [2, 2], values: new Float32Array(3) }]]),
      ),
    ).toThrow(/'t'.*needs a Float32Array of 4 values, got 3/);
  });

  it('refuses a finite value that F16 or BF16 would store as infinity, naming the tensor and index; infinities given stay', () => {
    const f32 = (bits: number) => new Float32Array(Uint32Array.of(bits).buffer)[0]!;
    const write = (dtype: 'F16' | 'BF16', values: Float32Array) =>
      encodeSafetensors(new Map([['w', { dtype, shape: [values.length], values }]]));
    // F16: 65504 is the largest; 65520 is halfway to the next power and rounds (to even) to infinity
    expect(() => write('F16', Float32Array.of(1, -65520))).toThrow(
      /tensor 'w': -65520 at index 1 is beyond F16's range/,
    );
    expect(() => write('F16', Float32Array.of(1e6))).toThrow(CheckpointError);
    expect([
      ...tensorToFloat32(readSafetensors(write('F16', Float32Array.of(65519, -65504))).tensors.get('w')!),
    ]).toEqual([65504, -65504]);
    expect(() => write('BF16', Float32Array.of(0, f32(0x7f7f8000)))).toThrow(
      /index 1 is beyond BF16's range/,
    );
    // an infinity or NaN that is in the tensor is written as it is (the file holds what was given)
    const kept = tensorToFloat32(
      readSafetensors(write('F16', Float32Array.of(Number.POSITIVE_INFINITY, Number.NaN))).tensors.get('w')!,
    );
    expect(kept[0]).toBe(Number.POSITIVE_INFINITY);
    expect(kept[1]).toBeNaN();
  });

  it('tensorToFloat32 refuses a hand-built tensor whose bytes do not match dtype × shape', () => {
    const wrong = { dtype: 'F32' as const, shape: [2], data: new Uint8Array(6) };
    expect(() => tensorToFloat32(wrong)).toThrow(CheckpointError);
    expect(() => tensorToFloat32(wrong)).toThrow(/holds 6 bytes but F32 \[2\] needs 8/);
    const bad = { dtype: 'F8' as unknown as 'F32', shape: [1], data: new Uint8Array(1) };
    expect(() => tensorToFloat32(bad)).toThrow(/unknown dtype "F8"/);
  });
});

describe('safetensors: malformed files are CheckpointErrors naming the file and the tensor or field', () => {
  it('a file shorter than the 8-byte length', () => {
    expect(refusal(new Uint8Array(5)).details.field).toBe('header length');
  });

  it('a header length beyond the file (truncated)', () => {
    const error = refusal(raw({}, 0, 1000n));
    expect(error.message).toMatch(/header length says 1000 bytes but only 2 follow/);
    expect(refusal(raw({}, 0, 2n ** 63n)).details.field).toBe('header length');
  });

  it('a header that is not JSON, or not an object', () => {
    expect(refusal(raw('{"a": ')).message).toMatch(/not valid JSON/);
    expect(refusal(raw('[1, 2]')).message).toMatch(/must be a JSON object/);
  });

  it('unknown and unsupported dtypes', () => {
    const unknown = refusal(raw({ t: { dtype: 'Q8', shape: [1], data_offsets: [0, 1] } }, 1));
    expect(unknown.details).toMatchObject({ tensor: 't', field: 'dtype' });
    expect(unknown.message).toMatch(/unknown dtype "Q8"/);
    expect(refusal(raw({ t: { dtype: 'F64', shape: [1], data_offsets: [0, 8] } }, 8)).message).toMatch(
      /'t' is F64; only F32, F16 and BF16/,
    );
  });

  it('dimensions that are not whole numbers ≥ 0', () => {
    for (const shape of [[1.5], [-1], ['2'], 'x']) {
      const error = refusal(raw({ t: { dtype: 'F32', shape, data_offsets: [0, 4] } }, 4));
      expect(error.details).toMatchObject({ tensor: 't', field: 'shape' });
    }
  });

  it('offsets out of range (truncated data), reversed, malformed', () => {
    const past = refusal(raw({ t: f32([4], 0) }, 12));
    expect(past.details).toMatchObject({ tensor: 't', field: 'data_offsets' });
    expect(past.message).toMatch(/run past the 12 bytes of data/);
    expect(refusal(raw({ t: { dtype: 'F32', shape: [0], data_offsets: [4, 0] } }, 4)).message).toMatch(
      /end before they begin/,
    );
    expect(refusal(raw({ t: { dtype: 'F32', shape: [1], data_offsets: [0] } }, 4)).details.field).toBe(
      'data_offsets',
    );
  });

  it('offsets that do not match dtype × shape', () => {
    const error = refusal(raw({ t: { dtype: 'F16', shape: [2, 3], data_offsets: [0, 8] } }, 8));
    expect(error.message).toMatch(/hold 8 bytes but F16 \[2, 3\] needs 12/);
    expect(error.details.tensor).toBe('t');
  });

  it('overlapping tensors, gaps and trailing bytes', () => {
    const overlap = refusal(raw({ a: f32([2], 0), b: f32([2], 4) }, 12));
    expect(overlap.message).toMatch(/'b'.*overlaps 'a'/);
    expect(overlap.details.tensor).toBe('b');
    expect(refusal(raw({ a: f32([1], 0), b: f32([1], 8) }, 12)).message).toMatch(/gap of 4/);
    expect(refusal(raw({ a: f32([1], 0) }, 6)).message).toMatch(/2 trailing bytes/);
  });

  it('duplicate names (which JSON.parse would silently merge)', () => {
    const header = `{"a":${JSON.stringify(f32([1], 0))},"__metadata__":{"a":"x"},"a":${JSON.stringify(f32([1], 4))}}`;
    const error = refusal(raw(header, 8));
    expect(error.message).toMatch(/'a' appears twice/);
    expect(error.details.tensor).toBe('a');
    // the same key nested in different objects is fine
    expect(
      readSafetensors(raw(`{"a":${JSON.stringify(f32([1], 0))},"b":${JSON.stringify(f32([1], 4))}}`, 8))
        .tensors.size,
    ).toBe(2);
  });

  it('metadata that is not strings', () => {
    expect(refusal(raw({ __metadata__: { step: 3 } })).details.field).toBe('__metadata__.step');
  });
});

describe('safetensors files', () => {
  const tensors = new Map<string, SafetensorsInput>([
    ['w', { dtype: 'F32', shape: [2], values: Float32Array.of(1, 2) }],
  ]);

  it('writes atomically, replaces an existing file and leaves no temporary file', async () => {
    const path = join(dir, 'g.safetensors');
    writeFileSync(path, 'old');
    await writeSafetensorsFile(path, tensors, { loss: '1' });
    const { tensors: read, metadata } = await readSafetensorsFile(path);
    expect([...tensorToFloat32(read.get('w')!)]).toEqual([1, 2]);
    expect(metadata.loss).toBe('1');
    expect(readdirSync(dir).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });

  it('a failed write leaves nothing behind and names the file', async () => {
    const target = join(dir, 'is-a-directory');
    mkdirSync(join(target, 'child'), { recursive: true });
    await expect(writeSafetensorsFile(target, tensors)).rejects.toThrow(CheckpointError);
    expect(readdirSync(dir).filter((f) => f.endsWith('.tmp'))).toEqual([]);
    expect(readdirSync(target)).toEqual(['child']);
    const missingDir = join(dir, 'no', 'such', 'g.safetensors');
    await expect(writeSafetensorsFile(missingDir, tensors)).rejects.toThrow(/cannot be written \(ENOENT\)/);
  });

  it('refuses a FIFO without opening it (no hang), a directory and a missing file', async () => {
    const fifo = join(dir, 'pipe.safetensors');
    execFileSync('mkfifo', [fifo]);
    await expect(readSafetensorsFile(fifo)).rejects.toThrow(/is a FIFO \(named pipe\), not a regular file/);
    await expect(readSafetensorsFile(dir)).rejects.toThrow(/is a directory/);
    await expect(readSafetensorsFile(join(dir, 'nope'))).rejects.toThrow(/does not exist/);
    await expect(readSafetensorsFile(dir)).rejects.toMatchObject({
      name: 'CheckpointError',
      details: { file: dir },
    });
  }, 5000);

  it('a truncated file: a CheckpointError naming the tensor that runs past the end', async () => {
    const bytes = encodeSafetensors(
      new Map<string, SafetensorsInput>([
        ['a', { dtype: 'F32', shape: [4], values: new Float32Array(4) }],
        ['b', { dtype: 'F32', shape: [4], values: new Float32Array(4) }],
      ]),
    );
    const path = join(dir, 'truncated.safetensors');
    writeFileSync(path, bytes.subarray(0, bytes.length - 3));
    await expect(readSafetensorsFile(path)).rejects.toMatchObject({
      name: 'CheckpointError',
      details: { file: path, tensor: 'b', field: 'data_offsets' },
    });
    writeFileSync(path, bytes.subarray(0, 20));
    await expect(readSafetensorsFile(path)).rejects.toMatchObject({ details: { field: 'header length' } });
  });

  it("reads the refgen fixture written by Python's hand-written writer (F16, HF names, metadata)", async () => {
    const path = join(__dirname, '..', '..', 'fixtures', 'llama-gqa', 'weights.safetensors');
    const { tensors: read, metadata } = await readSafetensorsFile(path);
    expect(metadata).toEqual({ format: 'pt' });
    expect(read.get('model.embed_tokens.weight')).toMatchObject({ dtype: 'F16', shape: [256, 128] });
    const gain = tensorToFloat32(read.get('model.norm.weight')!);
    const mean = gain.reduce((a, b) => a + b, 0) / gain.length;
    expect(mean).toBeGreaterThan(0.95); // 1 + N(0, 0.1²)
    expect(mean).toBeLessThan(1.05);
  });
});
