/**
 * Reading a whole input file (weights, tokens, a config) that must be a regular file: a FIFO, a
 * directory or a device is refused before anything is read, so a FIFO never blocks the process.
 */
import { constants, promises as fs } from 'node:fs';

/** What kind of file system entry `stats` is, in words ('a directory', 'a FIFO (named pipe)', …). */
export function describeFileKind(stats: import('node:fs').Stats): string {
  if (stats.isDirectory()) return 'a directory';
  if (stats.isFIFO()) return 'a FIFO (named pipe)';
  if (stats.isSocket()) return 'a socket';
  if (stats.isCharacterDevice()) return 'a character device';
  if (stats.isBlockDevice()) return 'a block device';
  return 'not a regular file';
}

/**
 * The bytes of the regular file at `path`. `fail(reason)` builds the caller's typed error (the
 * reason names what was found: missing, a FIFO, a directory, unreadable).
 *
 * The entry is checked with `stat` before it is opened; it is then opened non-blocking (opening a
 * FIFO with O_NONBLOCK returns at once) and checked again on the open handle, so a file swapped for
 * a FIFO between the two cannot hang the read either.
 */
export async function readRegularFile(path: string, fail: (reason: string) => Error): Promise<Uint8Array> {
  let stats: import('node:fs').Stats;
  try {
    stats = await fs.stat(path);
  } catch (error) {
    throw fail(systemReason(error));
  }
  if (!stats.isFile()) throw fail(`it is ${describeFileKind(stats)}, not a regular file`);
  let handle: fs.FileHandle;
  try {
    handle = await fs.open(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (error) {
    throw fail(systemReason(error));
  }
  try {
    const opened = await handle.stat();
    if (!opened.isFile()) throw fail(`it is ${describeFileKind(opened)}, not a regular file`);
    const buffer = await handle.readFile();
    return new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
  } catch (error) {
    if (error instanceof Error && !('code' in error)) throw error; // our own typed error
    throw fail(systemReason(error));
  } finally {
    await handle.close();
  }
}

/** A Node system error in words: 'it does not exist', 'permission denied', …. */
export function systemReason(error: unknown): string {
  const code = (error as { code?: unknown } | null)?.code;
  if (code === 'ENOENT') return 'it does not exist';
  if (code === 'EACCES' || code === 'EPERM') return 'permission denied';
  if (code === 'EISDIR') return 'it is a directory, not a regular file';
  if (code === 'ENOTDIR') return 'a component of the path is not a directory';
  if (code === 'ERR_FS_FILE_TOO_LARGE') {
    return 'it is larger than 2 GiB, the most Node reads into one buffer: store the tensors as F16 or BF16, or split the file';
  }
  return error instanceof Error ? error.message : String(error);
}
