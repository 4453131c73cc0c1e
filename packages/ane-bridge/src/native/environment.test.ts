import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkEnvironment } from './environment';

describe('checkEnvironment', () => {
  it('accepts the documented values, and ignores other variables and empty ones', () => {
    expect(
      checkEnvironment({
        ANE_BRIDGE_FORCE_TS: '1',
        ANE_BRIDGE_SKIP_BUILD: '0',
        ANE_BRIDGE_THREADS: '4',
        ANE_BRIDGE_NATIVE_PATH: '/anything.node',
        ANE_BRIDGE_CACHE_DIR: tmpdir(),
        ANE_BRIDGE_NO_ANE: '',
        PATH: '/usr/bin',
      }),
    ).toEqual([]);
  });

  it('reports a flag with a value that is ignored', () => {
    const [problem, ...rest] = checkEnvironment({ ANE_BRIDGE_FORCE_TS: 'yes' });
    expect(rest).toEqual([]);
    expect(problem).toEqual({
      name: 'ANE_BRIDGE_FORCE_TS',
      value: 'yes',
      problem: 'only 1 (use the TypeScript fallbacks) and 0 are understood, so "yes" is ignored',
      fix: 'set ANE_BRIDGE_FORCE_TS=1 to use the TypeScript fallbacks, or unset it',
    });
  });

  it('reports thread counts the native pool ignores or caps', () => {
    for (const value of ['0', '-2', 'four']) {
      expect(checkEnvironment({ ANE_BRIDGE_THREADS: value })[0]?.problem).toContain(
        'not a positive whole number',
      );
    }
    // The native pool reads it with atoi: the leading digits.
    expect(checkEnvironment({ ANE_BRIDGE_THREADS: '1.5' })[0]?.problem).toBe(
      '"1.5" is not a whole number; the pool reads it as 1',
    );
    expect(checkEnvironment({ ANE_BRIDGE_THREADS: '1000' })[0]?.problem).toContain('capped at 256');
  });

  it('reports an unknown name, with a did-you-mean for a typo', () => {
    const [typo] = checkEnvironment({ ANE_BRIDGE_FORCE_T: '1' });
    expect(typo?.problem).toContain('reads no variable of this name');
    expect(typo?.fix).toContain('did you mean ANE_BRIDGE_FORCE_TS?');
    const [unrelated] = checkEnvironment({ ANE_BRIDGE_COLOUR_SCHEME: 'dark' });
    expect(unrelated?.fix).not.toContain('did you mean');
  });

  it('reports a node-gyp or cache path of the wrong kind', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ane-bridge-env-'));
    const file = join(dir, 'file');
    writeFileSync(file, '');
    expect(checkEnvironment({ ANE_BRIDGE_NODE_GYP: dir })[0]?.problem).toBe(
      `${dir} is not a file, so it is ignored`,
    );
    expect(checkEnvironment({ ANE_BRIDGE_NODE_GYP: join(dir, 'none') })[0]?.problem).toContain(
      'does not exist',
    );
    expect(checkEnvironment({ ANE_BRIDGE_CACHE_DIR: file })[0]?.problem).toContain('is not a directory');
  });
});
