/**
 * File plumbing shared by the readers and writers of io/: reading only regular files (a FIFO must
 * never hang the reader) and writing atomically (a failure leaves no partial file).
 */

import { constants as bufferConstants } from 'node:buffer';
import { constants } from 'node:fs';
import { open, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

const MAX_LENGTH = bufferConstants.MAX_LENGTH;
const CHUNK_BYTES = 64 * 1024 * 1024;

/**
 * Refuses anything but a regular file before opening it for reading (a FIFO would block the open,
 * a directory fails late), then opens it non-blocking and checks again on the open handle.
 */
export async function readRegularFile(path: string, refuse: (why: string) => never): Promise<Uint8Array> {
  let info: Awaited<ReturnType<typeof stat>>;
  try {
    info = await stat(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    refuse(code === 'ENOENT' ? 'does not exist' : `cannot be read (${code ?? (error as Error).message})`);
  }
  if (!info.isFile()) refuse(`is ${kindOf(info)}, not a regular file`);
  const handle = await open(path, constants.O_RDONLY | constants.O_NONBLOCK);
  try {
    const opened = await handle.stat();
    if (!opened.isFile()) refuse(`is ${kindOf(opened)}, not a regular file`);
    // Read in chunks into one buffer: fs's readFile stops at 2 GiB, and an F32 checkpoint of a
    // 0.6B-parameter model is 2.4 GB.
    if (opened.size > MAX_LENGTH) {
      refuse(`is ${opened.size} bytes, more than the ${MAX_LENGTH} bytes one buffer can hold in Node.js`);
    }
    const bytes = new Uint8Array(opened.size);
    let filled = 0;
    while (filled < bytes.length) {
      const { bytesRead } = await handle.read(
        bytes,
        filled,
        Math.min(CHUNK_BYTES, bytes.length - filled),
        filled,
      );
      if (bytesRead === 0) refuse(`shrank while being read (${filled} of ${bytes.length} bytes)`);
      filled += bytesRead;
    }
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

/** Writes `bytes` to `path` through a temporary file in the same directory and a rename. */
export async function writeFileAtomically(
  path: string,
  bytes: Uint8Array,
  refuse: (why: string) => never,
): Promise<void> {
  const temporary = join(
    dirname(path),
    `.${basename(path)}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`,
  );
  try {
    const handle = await open(temporary, 'wx');
    try {
      await handle.writeFile(bytes);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temporary, path);
  } catch (error) {
    await rm(temporary, { force: true });
    const code = (error as NodeJS.ErrnoException).code;
    refuse(code ?? (error as Error).message);
  }
}
