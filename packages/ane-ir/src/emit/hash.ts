/**
 * Content hash of a program (its MIL text, weight blobs and I/O signature): equal programs hash
 * equal, so kernels identical across layers are recognised as one program, and a device caches one
 * compile per hash (ane-bridge's compile cache uses this function, salted with backend and chip).
 */
import type { Program } from '../mil/program';

/**
 * Two independent 32-bit multiply-xorshift lanes over 32-bit words (a 64-bit digest). Fast enough
 * to hash megabytes of weights per plan; not cryptographic.
 */
class Hasher {
  private a = 0x811c9dc5;
  private b = 0x27d4eb2f;
  private count = 0;

  word(value: number): void {
    this.a = Math.imul(this.a ^ value, 0x01000193);
    this.a ^= this.a >>> 15;
    this.b = Math.imul(this.b + value, 0x85ebca6b);
    this.b ^= this.b >>> 13;
    this.b = Math.imul(this.b, 0xc2b2ae35);
    this.count++;
  }

  bytes(data: Uint8Array): void {
    const words = data.byteLength >>> 2;
    if (data.byteOffset % 4 === 0) {
      const view = new Uint32Array(data.buffer, data.byteOffset, words);
      for (let i = 0; i < words; i++) this.word(view[i]!);
    } else {
      const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
      for (let i = 0; i < words; i++) this.word(view.getUint32(i * 4, true));
    }
    for (let i = words * 4; i < data.byteLength; i++) this.word(data[i]! | 0x100);
    this.word(data.byteLength);
  }

  text(value: string): void {
    for (let i = 0; i < value.length; i++) this.word(value.charCodeAt(i));
    this.word(value.length);
  }

  hex(): string {
    let a = this.a ^ this.count;
    let b = this.b ^ Math.imul(this.count, 0x9e3779b1);
    a = Math.imul(a ^ (a >>> 16), 0x85ebca6b);
    a ^= a >>> 13;
    b = Math.imul(b ^ (b >>> 16), 0xc2b2ae35);
    b ^= b >>> 16;
    return (a >>> 0).toString(16).padStart(8, '0') + (b >>> 0).toString(16).padStart(8, '0');
  }
}

/**
 * 16 hex digits identifying the program's text, weights and I/O signature. A non-empty `salt` (a
 * device's `backend:chip`) is hashed first, so the same program gets another key per salt.
 */
export function hashProgram(program: Program, salt = ''): string {
  const fnv = new Hasher();
  if (salt !== '') fnv.text(salt);
  fnv.text(program.mil);
  for (const key of [...program.weights.keys()].sort()) {
    fnv.text(key);
    fnv.bytes(program.weights.get(key)!);
  }
  fnv.text(JSON.stringify([program.inputs, program.outputs]));
  return fnv.hex();
}
