import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { DataError } from '../errors';
import { checkTokens, readTokenFile } from './tokens';

const dir = mkdtempSync(join(tmpdir(), 'ane-train-tokens-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function file(name: string, bytes: number[]): string {
  const path = join(dir, name);
  writeFileSync(path, Uint8Array.from(bytes));
  return path;
}

describe('readTokenFile', () => {
  it('reads little-endian uint16 ids', async () => {
    const tokens = await readTokenFile(file('ok.bin', [0x01, 0x00, 0xff, 0xff, 0x34, 0x12]));
    expect(tokens).toBeInstanceOf(Uint16Array);
    expect([...tokens]).toEqual([1, 65535, 0x1234]);
  });

  it('an odd number of bytes: DataError with the file and the offset of the dangling byte', async () => {
    const path = file('odd.bin', [1, 0, 2, 0, 7]);
    await expect(readTokenFile(path)).rejects.toMatchObject({
      name: 'DataError',
      details: { file: path, offset: 4 },
    });
    await expect(readTokenFile(path)).rejects.toThrow(/5 bytes, an odd number.*offset 4/);
  });

  it('an empty file, a directory, a missing file and a FIFO (without hanging) are refused', async () => {
    await expect(readTokenFile(file('empty.bin', []))).rejects.toThrow(/is empty/);
    await expect(readTokenFile(dir)).rejects.toThrow(DataError);
    await expect(readTokenFile(dir)).rejects.toThrow(/is a directory/);
    await expect(readTokenFile(join(dir, 'missing.bin'))).rejects.toThrow(/does not exist/);
    const fifo = join(dir, 'pipe.bin');
    execFileSync('mkfifo', [fifo]);
    await expect(readTokenFile(fifo)).rejects.toMatchObject({ name: 'DataError', details: { file: fifo } });
  }, 5000);
});

describe('checkTokens', () => {
  it('names the first id at or above the vocabulary with its index and byte offset', () => {
    expect(() => checkTokens(Uint16Array.of(0, 255, 3), 256)).not.toThrow();
    try {
      checkTokens(Uint16Array.of(0, 255, 256, 300), 256, { file: 't.bin' });
      expect.unreachable();
    } catch (error) {
      expect(error).toBeInstanceOf(DataError);
      expect((error as DataError).details).toEqual({ file: 't.bin', offset: 4 });
      expect((error as DataError).message).toMatch(
        /t\.bin.*token id 256 at index 2 \(byte offset 4\).*vocabulary \[0, 256\)/,
      );
    }
    // arrays from code: negative and fractional ids too, by index (no file offset)
    expect(() => checkTokens([3, -1], 256)).toThrow(/token id -1 at index 1 is not in the vocabulary/);
    expect(() => checkTokens(Float32Array.of(1.5), 256)).toThrow(DataError);
  });
});

describe('checkTokens: wrong arguments', () => {
  it('null tokens or a vocabSize that is not a whole number are DataErrors saying so (null was a TypeError)', () => {
    expect(() => checkTokens(null as never, 256)).toThrow(/tokens must be an array or typed array/);
    expect(() => checkTokens(Uint16Array.of(1), Number.NaN)).toThrow(/vocabSize must be a whole number/);
    expect(() => checkTokens(Uint16Array.of(1), '256' as never)).toThrow(DataError);
  });
});
