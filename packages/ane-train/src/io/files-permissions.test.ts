/**
 * A file that exists but cannot be opened (EACCES: no read permission; root bypasses permissions,
 * so the open is made to fail here) is a typed error naming the file from every reader, not a raw
 * `Error: EACCES: permission denied`.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';

const dir = mkdtempSync(join(tmpdir(), 'ane-train-permissions-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const secret = (name: string) => join(dir, name);

vi.mock('node:fs/promises', async (importOriginal) => {
  const actual = await importOriginal<typeof import('node:fs/promises')>();
  return {
    ...actual,
    open: (path: string, ...rest: unknown[]) => {
      if (String(path).includes('secret')) {
        const error = new Error(`EACCES: permission denied, open '${path}'`) as NodeJS.ErrnoException;
        error.code = 'EACCES';
        return Promise.reject(error);
      }
      return (actual.open as (...args: unknown[]) => unknown)(path, ...rest);
    },
  };
});

describe('an unreadable file', () => {
  it('is a DataError or CheckpointError naming the file and saying to check its permissions', async () => {
    const { loadCorpus } = await import('../data/corpus');
    const { byteTokenizer, loadTokenizer } = await import('../data/tokenizer');
    const { loadCheckpoint } = await import('../checkpoint/checkpoint');
    const { readSafetensorsFile } = await import('./safetensors');
    const { readLlama2cCheckpoint } = await import('../convert/llama2c');
    for (const name of ['secret.txt', 'secret.bin', 'secret.json', 'secret.safetensors']) {
      writeFileSync(secret(name), 'x\n');
    }
    const cases: [string, () => Promise<unknown>, string][] = [
      [
        'secret.txt',
        () => loadCorpus(secret('secret.txt'), { tokenizer: byteTokenizer(), vocabSize: 256 }),
        'DataError',
      ],
      [
        'secret.bin',
        () => loadCorpus(secret('secret.bin'), { tokenizer: byteTokenizer(), vocabSize: 256 }),
        'DataError',
      ],
      ['secret.json', () => loadTokenizer(secret('secret.json')), 'DataError'],
      ['secret.safetensors', () => loadCheckpoint(secret('secret.safetensors')), 'CheckpointError'],
      ['secret.safetensors', () => readSafetensorsFile(secret('secret.safetensors')), 'CheckpointError'],
      ['secret.bin', () => readLlama2cCheckpoint(secret('secret.bin')), 'CheckpointError'],
    ];
    for (const [name, run, type] of cases) {
      const error = (await run().catch((e: unknown) => e)) as Error & { details?: { file?: string } };
      expect(error.name, name).toBe(type);
      expect(error.message).toContain(secret(name));
      expect(error.message).toMatch(/EACCES: permission denied; check its permissions/);
      expect(error.details?.file).toBe(secret(name));
    }
  });
});
