/**
 * writeFileAtomically: the file is flushed, renamed, and the directory flushed after the rename
 * (observed through a recording wrapper around fs.promises.open); a failing writer leaves the target
 * and the directory as they were and its own error comes out; dead writers' temporaries go.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type * as FsPromises from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';

/** Every open: its path, and whether sync() was called on the handle, in call order. */
const opened: { path: string; synced: boolean; syncedAfter: string[] }[] = [];
const renamed: string[] = [];

vi.mock('node:fs/promises', async (importOriginal) => {
  const actual = await importOriginal<typeof FsPromises>();
  return {
    ...actual,
    open: async (...args: Parameters<typeof actual.open>) => {
      const handle = await actual.open(...args);
      const record = { path: String(args[0]), synced: false, syncedAfter: [] as string[] };
      opened.push(record);
      const sync = handle.sync.bind(handle);
      handle.sync = async () => {
        record.synced = true;
        record.syncedAfter = [...renamed];
        return sync();
      };
      return handle;
    },
    rename: async (from: string, to: string) => {
      await actual.rename(from, to);
      renamed.push(to);
    },
  };
});

const { writeFileAtomically } = await import('./files');

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'ane-train-files-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));
beforeEach(() => {
  opened.length = 0;
  renamed.length = 0;
});

const refuse = (why: string): never => {
  throw new Error(`refused: ${why}`);
};

describe('writeFileAtomically', () => {
  it('fsyncs the temporary file before the rename and the directory after it', async () => {
    const path = join(dir, 'a.bin');
    await writeFileAtomically(path, Uint8Array.of(1, 2, 3), refuse);
    expect([...readFileSync(path)]).toEqual([1, 2, 3]);
    const file = opened.find((o) => o.path.endsWith('.tmp'))!;
    expect(file.synced).toBe(true);
    expect(file.syncedAfter).toEqual([]); // flushed before the rename
    const directory = opened.find((o) => o.path === dir);
    expect(directory, 'the directory was opened').toBeDefined();
    expect(directory!.synced).toBe(true);
    expect(directory!.syncedAfter).toEqual([path]); // flushed after the rename
  });

  it('streams through a writer function; a writer that throws leaves the old file and no temporary, and its error comes out', async () => {
    const path = join(dir, 'b.bin');
    await writeFileAtomically(
      path,
      async (handle) => {
        await handle.write(Uint8Array.of(7), 0, 1, 0);
        await handle.write(Uint8Array.of(8, 9), 0, 2, 1);
      },
      refuse,
    );
    expect([...readFileSync(path)]).toEqual([7, 8, 9]);
    class WriterFailed extends Error {}
    await expect(
      writeFileAtomically(
        path,
        async (handle) => {
          await handle.write(Uint8Array.of(0, 0, 0, 0), 0, 4, 0);
          throw new WriterFailed('disk full (simulated)');
        },
        refuse,
      ),
    ).rejects.toBeInstanceOf(WriterFailed);
    expect([...readFileSync(path)]).toEqual([7, 8, 9]);
    expect(readdirSync(dir).filter((name) => name.endsWith('.tmp'))).toEqual([]);
    await expect(
      writeFileAtomically(join(dir, 'missing', 'c.bin'), Uint8Array.of(1), refuse),
    ).rejects.toThrow('refused: ENOENT');
  });

  it("removes the temporaries of dead writers (by pid) after a write, keeping live writers' and other files", async () => {
    const dead = join(dir, '.x.bin.2147483646.k3.tmp'); // no such pid (above the kernel's pid_max)
    const live = join(dir, `.y.bin.${process.ppid}.k3.tmp`);
    const other = join(dir, 'z.tmp');
    for (const file of [dead, live, other]) writeFileSync(file, '');
    await writeFileAtomically(join(dir, 'd.bin'), Uint8Array.of(1), refuse);
    const names = readdirSync(dir);
    expect(names).not.toContain('.x.bin.2147483646.k3.tmp');
    expect(names).toContain(`.y.bin.${process.ppid}.k3.tmp`);
    expect(names).toContain('z.tmp');
  });
});
