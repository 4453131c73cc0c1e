/**
 * The options file and the config file the CLI reads: a FIFO, a directory or a missing file is a
 * one-line ConfigError naming the file, never a hang (opening a FIFO for reading blocks until a
 * writer comes, which never happens).
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError } from '../errors';
import { loadRunOptions, readConfigFile } from './options-file';

const dir = mkdtempSync(join(tmpdir(), 'ane-train-options-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const fifo = join(dir, 'pipe.json');
execFileSync('mkfifo', [fifo]);
const directory = join(dir, 'folder.json');
mkdirSync(directory);

describe('the CLI reads only regular files', () => {
  it('an options file that is a FIFO or a directory is a ConfigError, without waiting for a writer', async () => {
    await expect(loadRunOptions(fifo, dir)).rejects.toThrow(
      /options file .*pipe\.json is a FIFO \(named pipe\), not a regular file: pass --options with a JSON file/,
    );
    await expect(loadRunOptions(directory, dir)).rejects.toThrow(/folder\.json is a directory/);
    await expect(loadRunOptions(join(dir, 'nope.json'), dir)).rejects.toThrow(/nope\.json does not exist/);
    // The default file is optional; when present it is read.
    expect(await loadRunOptions(undefined, dir)).toEqual({ options: {} });
    writeFileSync(join(dir, 'ane-train.config.json'), JSON.stringify({ seq: 8 }));
    expect((await loadRunOptions(undefined, dir)).options).toEqual({ seq: 8 });
    // Every train flag has its camelCase key; --keep-checkpoints's was refused as unknown.
    writeFileSync(join(dir, 'ane-train.config.json'), JSON.stringify({ keepCheckpoints: true }));
    expect((await loadRunOptions(undefined, dir)).options).toEqual({ keepCheckpoints: true });
  }, 5_000);

  it('a model config that is a FIFO or a directory is a ConfigError naming the file', async () => {
    const error = await readConfigFile(fifo).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).file).toBe(fifo);
    expect((error as Error).message).toMatch(/model config .*pipe\.json is a FIFO \(named pipe\)/);
    await expect(readConfigFile(directory)).rejects.toThrow(/folder\.json is a directory/);
    const good = join(dir, 'config.json');
    writeFileSync(good, JSON.stringify({ hidden_size: 8 }));
    expect(await readConfigFile(good)).toEqual({ hidden_size: 8 });
  }, 5_000);
});

describe('the train settings in an options file', () => {
  it('are validated and their paths resolved against the options file', async () => {
    const sub = join(dir, 'project');
    mkdirSync(sub, { recursive: true });
    const file = join(sub, 'train.json');
    writeFileSync(
      file,
      JSON.stringify({
        steps: 50,
        lr: 0.001,
        data: 'story.txt',
        out: 'runs/a',
        tokenizer: 'tok.json',
        evalEvery: 0,
      }),
    );
    expect((await loadRunOptions(file, dir)).options).toEqual({
      steps: 50,
      lr: 0.001,
      data: join(sub, 'story.txt'),
      out: join(sub, 'runs/a'),
      tokenizer: join(sub, 'tok.json'),
      evalEvery: 0,
    });
    writeFileSync(file, JSON.stringify({ tokenizer: 'llama2' }));
    expect((await loadRunOptions(file, dir)).options).toEqual({ tokenizer: 'llama2' });
    for (const [value, key] of [
      [{ lr: -1 }, "'lr'"],
      [{ valFraction: 1 }, "'valFraction'"],
      [{ steps: 1.5 }, "'steps'"],
      [{ evalevery: 5 }, "unknown key 'evalevery'"],
    ] as const) {
      writeFileSync(file, JSON.stringify(value));
      await expect(loadRunOptions(file, dir)).rejects.toThrow(key);
    }
  });
});
