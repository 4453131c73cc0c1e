import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CONFORMANCE_DIR } from '../../../../tools/testing/corpus';
import {
  BLOB_DTYPE_CODES,
  type BlobDtype,
  type BlobFieldDeviation,
  type BlobTensor,
  blobPayloadBytes,
  MilBlobError,
  readBlobFile,
  readBlobRecord,
  readBlobRecordAs,
  readBlobTensor,
  writeBlobFile,
} from './blob';
import { maderixBenchFile } from './blob.test-helper';

interface BlobReference {
  dtype: BlobDtype;
  elementCount: number;
  offset: number;
}

/** BLOBFILE constants of a program, grouped by weights path (a regex is enough for the corpus spelling). */
function blobReferences(mil: string): Map<string, BlobReference[]> {
  const pattern =
    /tensor<(\w+),\s*\[([\d,\s]*)\]>\(\s*BLOBFILE\(\s*path\s*=\s*string\("([^"]+)"\),\s*offset\s*=\s*uint64\((\d+)\)\s*\)\s*\)/g;
  const byPath = new Map<string, BlobReference[]>();
  for (const match of mil.matchAll(pattern)) {
    const [, dtype, dims, path, offset] = match as unknown as [string, BlobDtype, string, string, string];
    const elementCount = dims
      .split(',')
      .map((d) => Number(d.trim()))
      .reduce((a, b) => a * b, 1);
    const list = byPath.get(path) ?? [];
    list.push({ dtype, elementCount, offset: Number(offset) });
    byPath.set(path, list);
  }
  return byPath;
}

interface CaseWeightFile {
  caseId: string;
  key: string;
  bytes: Uint8Array;
  references: BlobReference[];
}

function corpusWeightFiles(): CaseWeightFile[] {
  const files: CaseWeightFile[] = [];
  for (const dir of readdirSync(CONFORMANCE_DIR, { withFileTypes: true })) {
    if (!dir.isDirectory()) continue;
    const caseDir = join(CONFORMANCE_DIR, dir.name);
    const manifest = JSON.parse(readFileSync(join(caseDir, 'case.json'), 'utf8')) as {
      weights: { key: string; file: string }[];
    };
    const references = blobReferences(readFileSync(join(caseDir, 'program.mil'), 'utf8'));
    for (const { key, file } of manifest.weights) {
      const refs = (references.get(key) ?? []).sort((a, b) => a.offset - b.offset);
      files.push({
        caseId: dir.name,
        key,
        bytes: new Uint8Array(readFileSync(join(caseDir, file))),
        references: refs,
      });
    }
  }
  return files;
}

const corpus = corpusWeightFiles();

/** A typed copy of a payload, as a caller with decoded weights would pass it. */
function typedPayload(dtype: BlobDtype, payload: Uint8Array): BlobTensor['data'] {
  const copy = payload.slice();
  if (dtype === 'fp16') return new Uint16Array(copy.buffer);
  if (dtype === 'int8') return new Int8Array(copy.buffer);
  return copy;
}

describe('MILBlob v2 against the conformance corpus', () => {
  it('finds every weight file and its BLOBFILE references', () => {
    expect(corpus.length).toBeGreaterThanOrEqual(9);
    for (const file of corpus) expect(file.references.length, file.key).toBeGreaterThan(0);
    expect(corpus.some((f) => f.references.length === 3)).toBe(true);
    expect(corpus.some((f) => f.references.some((r) => r.dtype === 'int8'))).toBe(true);
  });

  it.each(corpus.map((f) => [`${f.caseId} ${f.key}`, f] as const))('rewrites %s byte for byte', (_, file) => {
    const tensors = file.references.map((ref) => {
      const start = ref.offset + 64;
      const payload = file.bytes.subarray(start, start + blobPayloadBytes(ref.dtype, ref.elementCount));
      return { dtype: ref.dtype, data: typedPayload(ref.dtype, payload) };
    });
    const written = writeBlobFile(tensors);
    expect(written.offsets).toEqual(file.references.map((r) => r.offset));
    expect(Buffer.from(written.bytes).equals(Buffer.from(file.bytes))).toBe(true);
  });

  it.each(corpus.map((f) => [`${f.caseId} ${f.key}`, f] as const))('reads %s', (_, file) => {
    const contents = readBlobFile(file.bytes);
    expect(contents.version).toBe(2);
    expect(contents.records.map((r) => [r.offset, r.dtype])).toEqual(
      file.references.map((r) => [r.offset, r.dtype]),
    );
    for (const ref of file.references) {
      const tensor = readBlobTensor(file.bytes, ref.offset, {
        dtype: ref.dtype,
        elementCount: ref.elementCount,
      });
      expect(tensor.length).toBe(ref.elementCount);
      const payload = file.bytes.subarray(ref.offset + 64, ref.offset + 64 + tensor.byteLength);
      expect(
        Buffer.from(tensor.buffer, tensor.byteOffset, tensor.byteLength).equals(Buffer.from(payload)),
      ).toBe(true);
    }
  });

  it('decodes known values: the causal mask of case D starts 0, -65504', () => {
    const mask = corpus.find((f) => f.key.endsWith('mask.bin'))!;
    const bits = readBlobTensor(mask.bytes, 64, { dtype: 'fp16', elementCount: 64 * 64 });
    expect(bits[0]).toBe(0);
    expect(bits[1]).toBe(0xfbff);
  });
});

describe('writeBlobFile', () => {
  it('lays out a single fp16 tensor as 128 + 2N bytes with the payload at 128', () => {
    const { bytes, offsets } = writeBlobFile([
      { dtype: 'fp16', data: new Uint16Array([0x3c00, 0xc000, 0x7bff]) },
    ]);
    expect(offsets).toEqual([64]);
    expect(bytes.byteLength).toBe(128 + 6);
    const view = new DataView(bytes.buffer);
    expect(view.getUint32(0, true)).toBe(1);
    expect(view.getUint32(4, true)).toBe(2);
    expect([...bytes.subarray(64, 68)]).toEqual([0xef, 0xbe, 0xad, 0xde]);
    expect(view.getUint32(68, true)).toBe(1);
    expect(view.getBigUint64(72, true)).toBe(6n);
    expect(view.getBigUint64(80, true)).toBe(128n);
    expect(bytes.subarray(88, 128).every((b) => b === 0)).toBe(true);
    expect(view.getUint16(128, true)).toBe(0x3c00);
  });

  it('starts each record at the next multiple of 64 and adds no trailing padding', () => {
    const { bytes, offsets } = writeBlobFile([
      { dtype: 'int8', data: new Int8Array([1, -2, 3]) },
      { dtype: 'fp32', data: new Float32Array([1.5]) },
      { dtype: 'uint8', data: new Uint8Array(64) },
    ]);
    expect(offsets).toEqual([64, 192, 320]);
    expect(bytes.byteLength).toBe(320 + 64 + 64);
    expect(new DataView(bytes.buffer).getUint32(196, true)).toBe(BLOB_DTYPE_CODES.fp32);
    expect(new DataView(bytes.buffer).getFloat32(256, true)).toBe(1.5);
  });

  it('writes a header-only file for no tensors', () => {
    const { bytes, offsets } = writeBlobFile([]);
    expect(bytes.byteLength).toBe(64);
    expect(offsets).toEqual([]);
    expect(readBlobFile(bytes).records).toEqual([]);
  });

  it('records the unused trailing bits of sub-byte payloads', () => {
    const { bytes } = writeBlobFile([
      { dtype: 'uint4', data: new Uint8Array([0x21, 0x03]), elementCount: 3 },
    ]);
    expect(new DataView(bytes.buffer).getBigUint64(88, true)).toBe(4n);
    expect(readBlobRecord(bytes, 64)).toMatchObject({ dtype: 'uint4', byteSize: 2, paddingBits: 4 });
    expect(readBlobTensor(bytes, 64, { dtype: 'uint4', elementCount: 3 })).toEqual(
      new Uint8Array([0x21, 0x03]),
    );
  });

  it('refuses data that does not match its dtype', () => {
    expect(() => writeBlobFile([{ dtype: 'fp16', data: new Float32Array(2) }])).toThrow(
      /tensor 0 \(fp16\) data must be a Uint8Array or Uint16Array, got Float32Array/,
    );
    expect(() => writeBlobFile([{ dtype: 'uint4', data: new Uint8Array(1), elementCount: 3 }])).toThrow(
      /declares 3 elements, which need 2 bytes; data holds 1/,
    );
    expect(() => writeBlobFile([{ dtype: 'bogus' as BlobDtype, data: new Uint8Array(1) }])).toThrow(
      /unknown dtype/,
    );
  });
});

/** A valid two-tensor file to corrupt: fp16 × 4 at 64, int8 × 3 at 192. */
function sampleFile(): Uint8Array {
  return writeBlobFile([
    { dtype: 'fp16', data: new Uint16Array([1, 2, 3, 4]) },
    { dtype: 'int8', data: new Int8Array([5, 6, 7]) },
  ]).bytes;
}

function corrupt(edit: (view: DataView, bytes: Uint8Array) => void, bytes = sampleFile()): Uint8Array {
  edit(new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength), bytes);
  return bytes;
}

function blobError(read: () => unknown): MilBlobError {
  try {
    read();
  } catch (error) {
    if (error instanceof MilBlobError) return error;
    throw error;
  }
  throw new Error('expected a MilBlobError');
}

describe('reading corrupt blob files', () => {
  it('rejects a file shorter than the header', () => {
    const error = blobError(() => readBlobFile(new Uint8Array(10)));
    expect(error.message).toBe(
      'weight blob: at byte 0 expected a 64-byte MILBlob header, found a file of 10 bytes',
    );
    expect(error).toBeInstanceOf(Error);
    expect(error.name).toBe('MilBlobError');
  });

  it('rejects another format version', () => {
    const bytes = corrupt((v) => v.setUint32(4, 1, true));
    expect(blobError(() => readBlobFile(bytes))).toMatchObject({
      offset: 4,
      expected: 'format version 2',
      found: 'version 1',
    });
    expect(() => readBlobRecord(bytes, 64)).toThrow(/expected format version 2, found version 1/);
  });

  it('rejects a bad sentinel', () => {
    const bytes = corrupt((v) => v.setUint32(192, 0xcafebabe, true));
    expect(blobError(() => readBlobRecord(bytes, 192)).message).toBe(
      'weight blob: at byte 192 expected record sentinel 0xDEADBEEF, found 0xCAFEBABE',
    );
    expect(() => readBlobFile(bytes)).toThrow(/at byte 192 expected record sentinel/);
  });

  it('rejects a BLOBFILE offset that names the payload instead of the record', () => {
    expect(() => readBlobRecord(sampleFile(), 128)).toThrow(
      /at byte 128 expected record sentinel 0xDEADBEEF/,
    );
    expect(() => readBlobRecord(sampleFile(), 0)).toThrow(
      /expected a record offset that is a multiple of 64 and at least 64, found offset 0/,
    );
    expect(() => readBlobRecord(sampleFile(), 100)).toThrow(/found offset 100/);
  });

  it('rejects an unknown dtype code', () => {
    const bytes = corrupt((v) => v.setUint32(68, 99, true));
    expect(blobError(() => readBlobRecord(bytes, 64))).toMatchObject({ offset: 68, found: 'code 99' });
  });

  it('rejects a payload that runs past the end of the file', () => {
    const bytes = corrupt((v) => v.setBigUint64(200, 1000n, true));
    expect(blobError(() => readBlobRecord(bytes, 192)).message).toBe(
      'weight blob: at byte 200 expected a payload size that fits the file (at most 3 bytes after byte 256), found 1000 bytes',
    );
    const huge = corrupt((v) => v.setBigUint64(72, 0xffffffffffffffffn, true));
    expect(() => readBlobRecord(huge, 64)).toThrow(/found 18446744073709551615 bytes/);
  });

  it('rejects a payload offset field other than record + 64', () => {
    const bytes = corrupt((v) => v.setBigUint64(80, 64n, true));
    expect(blobError(() => readBlobRecord(bytes, 64)).message).toBe(
      'weight blob: at byte 80 expected payload offset field 128 (record + 64), found 64',
    );
  });

  it('rejects a record cut off by the end of the file', () => {
    expect(() => readBlobRecord(sampleFile().slice(0, 200), 192)).toThrow(
      /at byte 192 expected a 64-byte record, found end of file after 8 bytes/,
    );
    expect(() => readBlobRecord(sampleFile(), 4096)).toThrow(/found end of file after 0 bytes/);
  });

  it('rejects a tensor count the file cannot hold', () => {
    const bytes = corrupt((v) => v.setUint32(0, 0xffffffff, true));
    expect(blobError(() => readBlobFile(bytes)).message).toMatch(
      /expected a tensor count that fits a 259-byte file \(at most 3\), found count 4294967295/,
    );
    const three = corrupt((v) => v.setUint32(0, 3, true));
    expect(() => readBlobFile(three)).toThrow(/at byte 320 expected a 64-byte record/);
  });

  it('rejects bytes after the last payload', () => {
    const bytes = new Uint8Array(sampleFile().byteLength + 5);
    bytes.set(sampleFile());
    expect(blobError(() => readBlobFile(bytes)).message).toBe(
      'weight blob: at byte 259 expected end of file after 2 tensors, found 5 more bytes',
    );
  });

  it('rejects nonzero padding bits on a whole-byte dtype', () => {
    const bytes = corrupt((v) => v.setBigUint64(88, 3n, true));
    expect(() => readBlobRecord(bytes, 64)).toThrow(
      /at byte 88 expected padding-bits field 0 for fp16, found 3/,
    );
  });

  it('rejects a tensor whose dtype or size differs from the declaration', () => {
    const bytes = sampleFile();
    expect(blobError(() => readBlobTensor(bytes, 64, { dtype: 'fp16', elementCount: 8 })).message).toBe(
      'weight blob: at byte 64 expected fp16 × 8 elements (16 bytes), found fp16 with 8 bytes',
    );
    expect(() => readBlobTensor(bytes, 192, { dtype: 'fp16', elementCount: 3 })).toThrow(
      /expected fp16 × 3 elements \(6 bytes\), found int8 with 3 bytes/,
    );
    expect(readBlobTensor(bytes, 192, { dtype: 'int8', elementCount: 3 })).toEqual(new Int8Array([5, 6, 7]));
  });

  it('reads from a view that does not start at the beginning of its buffer', () => {
    const inner = sampleFile();
    const outer = new Uint8Array(inner.byteLength + 3);
    outer.set(inner, 3);
    const view = outer.subarray(3);
    expect(readBlobFile(view).records).toHaveLength(2);
    expect(readBlobTensor(view, 64, { dtype: 'fp16', elementCount: 4 })).toEqual(
      new Uint16Array([1, 2, 3, 4]),
    );
  });
});

describe('reading from Node Buffers (views into a shared pool)', () => {
  /** `bytes` copied into a Node Buffer that starts `shift` bytes into a larger ArrayBuffer. */
  function bufferAt(bytes: Uint8Array, shift: number): Buffer {
    const outer = Buffer.alloc(bytes.byteLength + shift + 7, 0xaa);
    outer.set(bytes, shift);
    return outer.subarray(shift, shift + bytes.byteLength);
  }

  const file = () =>
    writeBlobFile([
      { dtype: 'fp16', data: new Uint16Array([0x3c00, 0xc000, 0x3800]) },
      { dtype: 'fp32', data: new Float32Array([1.5, -2.25]) },
      { dtype: 'int32', data: new Int32Array([7, -9, 123456]) },
    ]);

  it('decodes every dtype from a Buffer at an odd (misaligned) byte offset', () => {
    const { bytes, offsets } = file();
    for (const shift of [1, 3, 5, 8]) {
      const view = bufferAt(bytes, shift);
      expect(view.byteOffset % 2 === 1 || shift === 8).toBe(true);
      expect(readBlobTensor(view, offsets[0]!, { dtype: 'fp16', elementCount: 3 })).toEqual(
        new Uint16Array([0x3c00, 0xc000, 0x3800]),
      );
      expect(readBlobTensor(view, offsets[1]!, { dtype: 'fp32', elementCount: 2 })).toEqual(
        new Float32Array([1.5, -2.25]),
      );
      expect(readBlobTensor(view, offsets[2]!, { dtype: 'int32', elementCount: 3 })).toEqual(
        new Int32Array([7, -9, 123456]),
      );
    }
  });

  it('decodes a weight file read with fs.readFileSync (a pooled Buffer)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ane-ir-blob-'));
    try {
      const { bytes, offsets } = file();
      writeFileSync(join(dir, 'w.bin'), bytes);
      // Small reads share Node's pool: allocate around them so the file lands at a nonzero offset.
      Buffer.from('x');
      const read = readFileSync(join(dir, 'w.bin'));
      expect(readBlobTensor(read, offsets[1]!, { dtype: 'fp32', elementCount: 2 })).toEqual(
        new Float32Array([1.5, -2.25]),
      );
      expect(readBlobTensor(read, offsets[0]!, { dtype: 'fp16', elementCount: 3 })).toEqual(
        new Uint16Array([0x3c00, 0xc000, 0x3800]),
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('records other tools write (maderix ane_int8_bench.m)', () => {
  const payloads = [
    Int8Array.from({ length: 8 }, (_, i) => i - 4),
    Int8Array.from({ length: 12 }, (_, i) => 3 * i - 20),
    Int8Array.from({ length: 4 }, (_, i) => -i),
  ];
  const { bytes, offsets } = maderixBenchFile(payloads, [2, 3, 1]);

  it('are refused by default, naming the payload-offset field', () => {
    expect(
      blobError(() => readBlobTensor(bytes, offsets[0]!, { dtype: 'int8', elementCount: 8 })).message,
    ).toBe('weight blob: at byte 80 expected payload offset field 128 (record + 64), found 0');
  });

  it('are read at record + 64 with the declared dtype when deviations are collected', () => {
    const deviations: BlobFieldDeviation[] = [];
    payloads.forEach((payload, i) => {
      const got = readBlobTensor(
        bytes,
        offsets[i]!,
        { dtype: 'int8', elementCount: payload.length },
        { deviations },
      );
      expect(got).toEqual(payload);
    });
    expect(deviations.map((d) => `${d.recordOffset} ${d.field}`)).toEqual([
      '64 payload offset',
      '64 dtype code',
      '64 payload size',
      '192 payload offset',
      '192 dtype code',
      '192 payload size',
      '320 payload offset',
      '320 dtype code',
      '320 payload size',
    ]);
    expect(deviations[1]).toEqual({
      field: 'dtype code',
      recordOffset: 64,
      at: 68,
      expected: '4 (int8, as the program declares)',
      found: '1 (fp16)',
    });
    expect(deviations[2]).toMatchObject({ at: 72, expected: '8 (int8 × 8)', found: '2' });
  });

  it('still refuse a bad sentinel, and a declared payload past the end of the file', () => {
    const deviations: BlobFieldDeviation[] = [];
    expect(() =>
      readBlobRecordAs(bytes, offsets[2]!, { dtype: 'int8', elementCount: 5 }, { deviations }),
    ).toThrow(/5 payload bytes for the declared int8 × 5 at record \+ 64/);
    const broken = bytes.slice();
    broken[64] = 0;
    expect(() => readBlobRecordAs(broken, 64, { dtype: 'int8', elementCount: 8 }, { deviations })).toThrow(
      /record sentinel 0xDEADBEEF/,
    );
  });

  it('keep our own records strict: a canonical record whose dtype differs is returned as written', () => {
    const ours = writeBlobFile([{ dtype: 'fp16', data: new Uint16Array(4) }]).bytes;
    const deviations: BlobFieldDeviation[] = [];
    const record = readBlobRecordAs(ours, 64, { dtype: 'int8', elementCount: 8 }, { deviations });
    expect(record.dtype).toBe('fp16');
    expect(deviations).toEqual([]);
    expect(() => readBlobTensor(ours, 64, { dtype: 'int8', elementCount: 8 }, { deviations })).toThrow(
      /expected int8 × 8 elements \(8 bytes\), found fp16 with 8 bytes/,
    );
  });
});

const dtypeArbitrary = fc.constantFrom<BlobDtype>('fp16', 'int8', 'fp32', 'uint8', 'int16', 'uint4', 'bf16');

const tensorArbitrary = dtypeArbitrary.chain((dtype) =>
  fc.nat({ max: 300 }).chain((elementCount) =>
    fc
      .uint8Array({
        minLength: blobPayloadBytes(dtype, elementCount),
        maxLength: blobPayloadBytes(dtype, elementCount),
      })
      .map((data) => ({ dtype, data, elementCount })),
  ),
);

function isExpectedFailure(error: unknown): boolean {
  return error instanceof MilBlobError;
}

describe('MILBlob properties', () => {
  it('reads back what it writes', () => {
    fc.assert(
      fc.property(fc.array(tensorArbitrary, { maxLength: 6 }), (tensors) => {
        const { bytes, offsets } = writeBlobFile(tensors);
        const { records } = readBlobFile(bytes);
        expect(records.map((r) => r.offset)).toEqual(offsets);
        tensors.forEach((tensor, i) => {
          expect(offsets[i]! % 64).toBe(0);
          const read = readBlobTensor(bytes, offsets[i]!, tensor);
          expect(new Uint8Array(read.buffer, read.byteOffset, read.byteLength)).toEqual(tensor.data);
        });
      }),
    );
  });

  it('never throws anything but MilBlobError, nor reads out of bounds, on corrupted files', () => {
    const valid = fc.array(tensorArbitrary, { maxLength: 4 }).map((tensors) => writeBlobFile(tensors).bytes);
    const mutated = fc
      .tuple(valid, fc.array(fc.tuple(fc.nat(), fc.nat({ max: 255 })), { maxLength: 8 }), fc.nat())
      .map(([bytes, edits, cut]) => {
        for (const [at, value] of edits) if (bytes.length > 0) bytes[at % bytes.length] = value;
        return cut % 5 === 0 ? bytes.subarray(0, cut % (bytes.length + 1)) : bytes;
      });
    fc.assert(
      fc.property(fc.oneof(mutated, fc.uint8Array({ maxLength: 400 })), fc.integer(), (bytes, offset) => {
        for (const read of [
          () => readBlobFile(bytes),
          () => readBlobRecord(bytes, offset),
          () => readBlobRecord(bytes, 64 * (Math.abs(offset) % 8)),
          () => readBlobTensor(bytes, 64, { dtype: 'fp16', elementCount: Math.abs(offset) % 300 }),
          // The lenient reading of records other tools write stays inside the file too.
          () =>
            readBlobRecordAs(
              bytes,
              64 * (Math.abs(offset) % 8),
              { dtype: 'int8', elementCount: Math.abs(offset) % 300 },
              { deviations: [] },
            ),
          () =>
            readBlobTensor(
              bytes,
              64,
              { dtype: 'uint4', elementCount: Math.abs(offset) % 300 },
              { deviations: [] },
            ),
        ]) {
          try {
            const result = read();
            if (result && 'records' in result) {
              for (const r of result.records)
                expect(r.payloadOffset + r.byteSize).toBeLessThanOrEqual(bytes.length);
            }
            if (result && 'payloadOffset' in result) {
              expect(result.payloadOffset + result.byteSize).toBeLessThanOrEqual(bytes.length);
            }
          } catch (error) {
            if (!isExpectedFailure(error)) throw error;
          }
        }
      }),
      { numRuns: 2000 },
    );
  });
});
