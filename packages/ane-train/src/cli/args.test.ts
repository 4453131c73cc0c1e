import { describe, expect, it } from 'vitest';
import { choiceFlag, parseStrictArgs, UsageError, wholeNumberFlag } from './args';

const def = {
  batch: { type: 'string' },
  preset: { type: 'string' },
  json: { type: 'boolean' },
} as const;

describe('parseStrictArgs', () => {
  it('parses declared flags in both spellings', () => {
    const args = parseStrictArgs(['--batch', '4', '--preset=tiny', '--json'], def);
    expect(args.batch).toBe('4');
    expect(args.preset).toBe('tiny');
    expect(args.json).toBe(true);
  });

  it('refuses an unknown flag (citty alone would ignore it) and suggests the close one', () => {
    expect(() => parseStrictArgs(['--bacth', '4'], def)).toThrow(UsageError);
    expect(() => parseStrictArgs(['--bacth', '4'], def)).toThrow(
      "unknown option '--bacth' (did you mean --batch?)",
    );
    expect(() => parseStrictArgs(['-b', '4'], def)).toThrow("unknown option '-b'");
  });

  it('refuses a flag without its value, an operand, and a switch given a value', () => {
    expect(() => parseStrictArgs(['--batch'], def)).toThrow('--batch needs a value');
    expect(() => parseStrictArgs(['--batch', '--json'], def)).toThrow('--batch needs a value');
    expect(() => parseStrictArgs(['--batch='], def)).toThrow('--batch needs a value');
    expect(() => parseStrictArgs(['tiny'], def)).toThrow("unexpected argument 'tiny'");
    expect(() => parseStrictArgs(['--json=yes'], def)).toThrow('--json is a switch');
  });
});

describe('flag values', () => {
  it('takes whole numbers ≥ 1 only', () => {
    expect(wholeNumberFlag({ batch: '12' }, 'batch')).toBe(12);
    expect(wholeNumberFlag({}, 'batch')).toBeUndefined();
    for (const bad of ['0', '-1', '2.5', 'x', '1e3', ''])
      expect(() => wholeNumberFlag({ batch: bad }, 'batch')).toThrow(
        `--batch must be a whole number ≥ 1, got '${bad}'`,
      );
  });

  it('takes one of the choices, suggesting the close one', () => {
    expect(choiceFlag({ chip: 'M3' }, 'chip', ['M1', 'M3'])).toBe('M3');
    expect(() => choiceFlag({ chip: 'M6' }, 'chip', ['M1', 'M3'])).toThrow(
      "--chip must be one of M1, M3, got 'M6'",
    );
    expect(() => choiceFlag({ preset: 'stories100M' }, 'preset', ['tiny', 'stories110M'])).toThrow(
      '(did you mean stories110M?)',
    );
  });
});
