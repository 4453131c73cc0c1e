import { createHash } from 'node:crypto';
import type { Program } from 'ane-ir/mil';

/**
 * Content hash of everything that makes a compiled program what it is: the MIL text, each weight
 * (path and bytes, in path order) and the I/O signature. Equal hashes share one compile.
 */
export function programHash(program: Program, salt = ''): string {
  const hash = createHash('sha256');
  const field = (text: string) => hash.update(`${text.length}:${text}`);
  field(salt);
  field(program.mil);
  for (const path of [...program.weights.keys()].sort()) {
    const bytes = program.weights.get(path)!;
    field(path);
    field(String(bytes.byteLength));
    hash.update(bytes);
  }
  field(JSON.stringify([program.inputs, program.outputs]));
  return hash.digest('hex');
}
