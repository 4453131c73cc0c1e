import { describe, expect, it } from 'vitest';
import type { Program } from '../mil/program';
import { hashProgram } from './hash';

const program = (overrides: Partial<Program> = {}): Program => ({
  mil: 'program(1.3)\n',
  weights: new Map([['@model_path/weights/w.bin', new Uint8Array([1, 2, 3, 4, 5])]]),
  inputs: [{ name: 'x', dtype: 'fp16', shape: [1, 4, 1, 8] }],
  outputs: [{ name: 'y', dtype: 'fp16', shape: [1, 4, 1, 8] }],
  ...overrides,
});

describe('hashProgram (the one program identity: ane-ir kernels and ane-bridge compile caches)', () => {
  it('is equal for equal programs and differs when text, a weight byte, a weight path or the I/O differ', () => {
    const base = hashProgram(program());
    expect(base).toMatch(/^[0-9a-f]{16}$/);
    expect(hashProgram(program())).toBe(base);
    expect(hashProgram(program({ mil: 'program(1.3) \n' }))).not.toBe(base);
    expect(
      hashProgram(
        program({ weights: new Map([['@model_path/weights/w.bin', new Uint8Array([1, 2, 3, 4, 6])]]) }),
      ),
    ).not.toBe(base);
    expect(
      hashProgram(
        program({ weights: new Map([['@model_path/weights/v.bin', new Uint8Array([1, 2, 3, 4, 5])]]) }),
      ),
    ).not.toBe(base);
    expect(hashProgram(program({ inputs: [{ name: 'x', dtype: 'fp16', shape: [1, 8, 1, 4] }] }))).not.toBe(
      base,
    );
  });

  it('hashes a weight view by its own bytes, not its whole buffer (any byteOffset)', () => {
    const backing = new Uint8Array([9, 9, 9, 1, 2, 3, 4, 5, 9]);
    const view = backing.subarray(3, 8);
    expect(hashProgram(program({ weights: new Map([['@model_path/weights/w.bin', view]]) }))).toBe(
      hashProgram(program()),
    );
  });

  it('a salt (a device backend and chip) gives another key; no salt is the plain hash', () => {
    expect(hashProgram(program(), '')).toBe(hashProgram(program()));
    expect(hashProgram(program(), 'sim:M4')).not.toBe(hashProgram(program()));
    expect(hashProgram(program(), 'sim:M4')).not.toBe(hashProgram(program(), 'sim:M1'));
  });
});
