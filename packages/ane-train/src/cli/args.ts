/**
 * Strict flags on top of citty: citty parses leniently (an unknown flag is ignored), so a typo such
 * as `--bacth 2` would silently plan the default batch. Every raw argument is checked against the
 * command's declared flags first; a mistake is a `UsageError` (exit 2, with the command's usage).
 */
import { type ArgsDef, parseArgs } from 'citty';

/** A command line that does not fit the command: unknown flag, missing value, bad number. */
export class UsageError extends Error {
  override name = 'UsageError';
}

/** The closest of `candidates` (at most two edits away), as ` (did you mean --x?)`, or ''. */
function suggestion(given: string, candidates: readonly string[]): string {
  const distance = (a: string, b: string): number => {
    const row = Array.from({ length: b.length + 1 }, (_, j) => j);
    for (let i = 1; i <= a.length; i++) {
      let diagonal = row[0]!;
      row[0] = i;
      for (let j = 1; j <= b.length; j++) {
        const above = row[j]!;
        row[j] = Math.min(above + 1, row[j - 1]! + 1, diagonal + (a[i - 1] === b[j - 1] ? 0 : 1));
        diagonal = above;
      }
    }
    return row[b.length]!;
  };
  let best: string | undefined;
  let bestDistance = 3;
  for (const candidate of candidates) {
    const d = distance(given.toLowerCase(), candidate.toLowerCase());
    if (d < bestDistance) {
      best = candidate;
      bestDistance = d;
    }
  }
  return best === undefined ? '' : ` (did you mean --${best}?)`;
}

/**
 * Checks `rawArgs` against `def` (flags; operands only as many as `options.positionals`) and parses
 * them with citty. Throws UsageError for an unknown flag, a flag without its value or an operand.
 */
export function parseStrictArgs(
  rawArgs: readonly string[],
  def: ArgsDef,
  options: { positionals?: number; positionalHint?: string } = {},
): Record<string, unknown> & { _: string[] } {
  const names = Object.keys(def).filter((name) => def[name]?.type !== 'positional');
  const allowed = options.positionals ?? 0;
  /** The operands, and the flags with their values (what citty parses). */
  const positionals: string[] = [];
  const flagArgs: string[] = [];
  const operand = (arg: string) => {
    if (positionals.length >= allowed)
      throw new UsageError(
        allowed === 0
          ? `unexpected argument '${arg}': this command takes only --flags`
          : `unexpected argument '${arg}': this command takes ${allowed === 1 ? 'one' : allowed} ${options.positionalHint ?? 'argument'} and --flags`,
      );
    positionals.push(arg);
  };
  for (let i = 0; i < rawArgs.length; i++) {
    const arg = rawArgs[i]!;
    if (!arg.startsWith('-') || arg === '-') {
      operand(arg);
      continue;
    }
    if (arg === '--') {
      for (const rest of rawArgs.slice(i + 1)) operand(rest);
      break;
    }
    flagArgs.push(arg);
    if (!arg.startsWith('--'))
      throw new UsageError(`unknown option '${arg}'${suggestion(arg.slice(1), names)}`);
    const equals = arg.indexOf('=');
    const name = arg.slice(2, equals === -1 ? undefined : equals);
    const negated = name.startsWith('no-') ? name.slice(3) : undefined;
    const declared = def[name]?.type === 'positional' ? undefined : def[name];
    const spec =
      declared ?? (negated !== undefined && def[negated]?.type === 'boolean' ? def[negated] : undefined);
    if (spec === undefined) throw new UsageError(`unknown option '--${name}'${suggestion(name, names)}`);
    if (spec.type === 'boolean') {
      if (equals !== -1 && !['true', 'false'].includes(arg.slice(equals + 1)))
        throw new UsageError(`--${name} is a switch: give it alone (or =true / =false), got '${arg}'`);
      continue;
    }
    if (equals !== -1) {
      if (arg.slice(equals + 1) === '') throw new UsageError(`--${name} needs a value`);
      continue;
    }
    const value = rawArgs[i + 1];
    if (value === undefined || value.startsWith('--'))
      throw new UsageError(
        `--${name} needs a value${spec.valueHint !== undefined ? ` (${spec.valueHint})` : ''}`,
      );
    flagArgs.push(value);
    i++;
  }
  return { ...(parseArgs(flagArgs, def) as Record<string, unknown>), _: positionals };
}

/**
 * A flag's value as a finite number within [min, max] (`exclusiveMin`: above min), or undefined when
 * the flag is absent.
 */
export function numberFlag(
  args: Record<string, unknown>,
  name: string,
  range: { min?: number; max?: number; exclusiveMin?: boolean; exclusiveMax?: boolean } = {},
): number | undefined {
  const raw = args[name];
  if (raw === undefined) return undefined;
  const text = String(raw).trim();
  const value = Number(text);
  const { min, max } = range;
  const low = min === undefined || (range.exclusiveMin === true ? value > min : value >= min);
  const high = max === undefined || (range.exclusiveMax === true ? value < max : value <= max);
  if (text === '' || !Number.isFinite(value) || !low || !high) {
    const bounds = [
      min !== undefined ? `${range.exclusiveMin === true ? '>' : '≥'} ${min}` : '',
      max !== undefined ? `${range.exclusiveMax === true ? '<' : '≤'} ${max}` : '',
    ]
      .filter((b) => b !== '')
      .join(' and ');
    throw new UsageError(`--${name} must be a number${bounds !== '' ? ` ${bounds}` : ''}, got '${text}'`);
  }
  return value;
}

/** A flag's value as a whole number ≥ 0 (0 allowed: "never"), or undefined when absent. */
export function countFlag(args: Record<string, unknown>, name: string): number | undefined {
  const raw = args[name];
  if (raw === undefined) return undefined;
  const text = String(raw);
  if (!/^[0-9]+$/.test(text) || !Number.isSafeInteger(Number(text)))
    throw new UsageError(`--${name} must be a whole number ≥ 0, got '${text}'`);
  return Number(text);
}

/** A flag's value as a whole number ≥ 1, or undefined when the flag is absent. */
export function wholeNumberFlag(args: Record<string, unknown>, name: string): number | undefined {
  const raw = args[name];
  if (raw === undefined) return undefined;
  const text = String(raw);
  if (!/^[0-9]+$/.test(text) || Number(text) < 1 || !Number.isSafeInteger(Number(text)))
    throw new UsageError(`--${name} must be a whole number ≥ 1, got '${text}'`);
  return Number(text);
}

/** A flag's value, which must be one of `choices`, or undefined when the flag is absent. */
export function choiceFlag<T extends string>(
  args: Record<string, unknown>,
  name: string,
  choices: readonly T[],
): T | undefined {
  const raw = args[name];
  if (raw === undefined) return undefined;
  const text = String(raw);
  if (!(choices as readonly string[]).includes(text)) {
    const close = suggestion(text, choices).replace('--', '');
    throw new UsageError(`--${name} must be one of ${choices.join(', ')}, got '${text}'${close}`);
  }
  return text as T;
}

/** A string flag's value, or undefined when absent. */
export function stringFlag(args: Record<string, unknown>, name: string): string | undefined {
  const raw = args[name];
  return raw === undefined ? undefined : String(raw);
}
