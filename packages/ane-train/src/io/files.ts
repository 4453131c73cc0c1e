/**
 * File plumbing shared by the readers and writers of io/: reading only regular files (a FIFO must
 * never hang the reader) and writing atomically (a failure leaves no partial file).
 */

import { constants as bufferConstants } from 'node:buffer';
import { constants } from 'node:fs';
import { type FileHandle, open, readdir, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

const MAX_LENGTH = bufferConstants.MAX_LENGTH;
const CHUNK_BYTES = 64 * 1024 * 1024;

/**
 * Refuses anything but a regular file before opening it for reading (a FIFO would block the open,
 * a directory fails late), then opens it non-blocking and checks again on the open handle. The
 * caller closes the handle.
 */
export async function openRegularFile(
  path: string,
  refuse: (why: string) => never,
): Promise<{ handle: FileHandle; size: number }> {
  let info: Awaited<ReturnType<typeof stat>>;
  try {
    info = await stat(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    refuse(code === 'ENOENT' ? 'does not exist' : `cannot be read (${code ?? (error as Error).message})`);
  }
  if (!info.isFile()) refuse(`is ${kindOf(info)}, not a regular file`);
  let handle: FileHandle;
  try {
    handle = await open(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    refuse(
      code === 'EACCES' || code === 'EPERM'
        ? `cannot be read (${code}: permission denied; check its permissions)`
        : `cannot be read (${code ?? (error as Error).message})`,
    );
  }
  try {
    const opened = await handle.stat();
    if (!opened.isFile()) refuse(`is ${kindOf(opened)}, not a regular file`);
    return { handle, size: opened.size };
  } catch (error) {
    await handle.close();
    throw error;
  }
}

/**
 * Fills `bytes` from the file at `position`, in chunks (one read call takes at most 2 GiB); each
 * chunk read is passed to `onChunk` (e.g. a hash). A file that ends early is refused.
 */
export async function readExactly(
  handle: FileHandle,
  bytes: Uint8Array,
  position: number,
  refuse: (why: string) => never,
  onChunk?: (chunk: Uint8Array) => void,
): Promise<void> {
  let filled = 0;
  while (filled < bytes.length) {
    const { bytesRead } = await handle.read(
      bytes,
      filled,
      Math.min(CHUNK_BYTES, bytes.length - filled),
      position + filled,
    );
    if (bytesRead === 0)
      refuse(
        `shrank while being read (it ends at byte ${position + filled}, before ${position + bytes.length})`,
      );
    onChunk?.(bytes.subarray(filled, filled + bytesRead));
    filled += bytesRead;
  }
}

/** Reads a whole regular file (see `openRegularFile`) into one buffer. */
export async function readRegularFile(path: string, refuse: (why: string) => never): Promise<Uint8Array> {
  const { handle, size } = await openRegularFile(path, refuse);
  try {
    // Read in chunks into one buffer: fs's readFile stops at 2 GiB, and an F32 checkpoint of a
    // 0.6B-parameter model is 2.4 GB.
    if (size > MAX_LENGTH) {
      refuse(`is ${size} bytes, more than the ${MAX_LENGTH} bytes one buffer can hold in Node.js`);
    }
    const bytes = new Uint8Array(size);
    await readExactly(handle, bytes, 0, refuse);
    return bytes;
  } finally {
    await handle.close();
  }
}

function kindOf(info: {
  isDirectory(): boolean;
  isFIFO(): boolean;
  isSocket(): boolean;
  isCharacterDevice(): boolean;
  isBlockDevice(): boolean;
}): string {
  if (info.isDirectory()) return 'a directory';
  if (info.isFIFO()) return 'a FIFO (named pipe)';
  if (info.isSocket()) return 'a socket';
  if (info.isCharacterDevice() || info.isBlockDevice()) return 'a device';
  return 'not a regular file';
}

/** Writes a file's content through an open handle (e.g. a large file in pieces). */
export type FileContentWriter = (handle: FileHandle) => Promise<void>;

/** Temporary files this process is writing now (never removed as stale). */
const activeTemporaries = new Set<string>();

/** `.<name>.<pid>.<random>.tmp`: the temporary files `writeFileAtomically` makes beside `<name>`. */
const TEMPORARY = /^\.(.+)\.(\d+)\.[a-z0-9]{1,16}\.tmp$/;

function processIsAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Removes the temporary files killed writers left in `path`'s directory (ours by their name
 * `.<name>.<pid>.<random>.tmp`, their process gone, or this process and not being written any
 * more). Best effort: a file that cannot be removed stays.
 */
export async function removeStaleTemporaries(path: string): Promise<string[]> {
  const directory = dirname(path);
  let names: string[];
  try {
    names = await readdir(directory);
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const name of names) {
    const match = TEMPORARY.exec(name);
    if (match === null) continue;
    const full = join(directory, name);
    const pid = Number(match[2]);
    if (activeTemporaries.has(full) || (pid !== process.pid && processIsAlive(pid))) continue;
    try {
      await rm(full, { force: true });
      removed.push(full);
    } catch {
      // Someone else's file, or already gone.
    }
  }
  return removed;
}

/**
 * Flushes a directory's entries (a rename inside it) to the disk. Platforms that cannot open or
 * sync a directory (EISDIR, EINVAL, EPERM, EACCES: Windows, some network file systems) skip it.
 */
export async function syncDirectory(directory: string): Promise<void> {
  let handle: FileHandle | undefined;
  try {
    handle = await open(directory, constants.O_RDONLY);
    await handle.sync();
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (!['EISDIR', 'EINVAL', 'EPERM', 'EACCES', 'ENOTSUP', 'EBADF'].includes(code ?? '')) throw error;
  } finally {
    await handle?.close();
  }
}

/**
 * Writes `content` (bytes, or a function writing through the open handle) to `path` atomically: a
 * temporary file in the same directory (`.<name>.<pid>.<random>.tmp`) is written, flushed (fsync),
 * renamed over `path`, and the directory flushed, so a crash or `kill -9` at any moment leaves
 * either the old file or the new one, whole. On a failure the temporary file is removed and `path`
 * is left as it was; a failure of the file system calls `refuse(errno code)`, any other error (from
 * `content`) is rethrown. After a success, temporary files of earlier killed writers are removed.
 */
export async function writeFileAtomically(
  path: string,
  content: Uint8Array | FileContentWriter,
  refuse: (why: string) => never,
): Promise<void> {
  const temporary = join(
    dirname(path),
    `.${basename(path)}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`,
  );
  activeTemporaries.add(temporary);
  try {
    const handle = await open(temporary, 'wx');
    try {
      if (typeof content === 'function') await content(handle);
      else await handle.writeFile(content);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temporary, path);
    activeTemporaries.delete(temporary);
    await syncDirectory(dirname(path));
  } catch (error) {
    await rm(temporary, { force: true });
    activeTemporaries.delete(temporary);
    const code = (error as NodeJS.ErrnoException).code;
    if (typeof code !== 'string' && typeof content === 'function') throw error;
    refuse(code ?? (error as Error).message);
  }
  await removeStaleTemporaries(path);
}
