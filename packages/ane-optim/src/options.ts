/**
 * Options objects are checked key by key: a key ane-optim does not know (PyTorch's `lr`,
 * `weight_decay`, a typo) is an `OptimizerConfigError` with a did-you-mean, never silently ignored.
 */
import { describeValue, OptimizerConfigError } from './errors';

/** Names PyTorch, MLX and Optax users reach for first, and what ane-optim calls them. */
const ALIASES: Readonly<Record<string, string>> = {
  lr: 'learningRate',
  learning_rate: 'learningRate',
  learningrate: 'learningRate',
  beta1: 'betas',
  beta2: 'betas',
  b1: 'betas',
  b2: 'betas',
  amsgrad: 'betas',
  decay: 'weightDecay',
  wd: 'weightDecay',
  init_scale: 'initScale',
  growth_factor: 'growthFactor',
  backoff_factor: 'backoffFactor',
  growth_interval: 'growthInterval',
  param_groups: 'groups',
  accumulation_steps: 'steps',
};

function snakeToCamel(key: string): string {
  return key.replace(/[_-]+([a-z0-9])/gi, (_, c: string) => c.toUpperCase());
}

/** Edit distance (insertions, deletions, substitutions), case-insensitive. */
function distance(a: string, b: string): number {
  const x = a.toLowerCase();
  const y = b.toLowerCase();
  let previous = Array.from({ length: y.length + 1 }, (_, j) => j);
  for (let i = 1; i <= x.length; i++) {
    const current = [i];
    for (let j = 1; j <= y.length; j++) {
      current[j] = Math.min(
        previous[j]! + 1,
        current[j - 1]! + 1,
        previous[j - 1]! + (x[i - 1] === y[j - 1] ? 0 : 1),
      );
    }
    previous = current;
  }
  return previous[y.length]!;
}

/** The known key `key` most likely meant, if any. */
export function didYouMean(key: string, known: readonly string[]): string | undefined {
  const alias = ALIASES[key] ?? ALIASES[key.toLowerCase()];
  if (alias !== undefined && known.includes(alias)) return alias;
  const camel = snakeToCamel(key);
  const exact = known.find((k) => k.toLowerCase() === camel.toLowerCase());
  if (exact !== undefined) return exact;
  const lower = camel.toLowerCase();
  // A shared stem ('reduce' / 'reduction'): the first four letters, or the whole of the shorter.
  const stem = (k: string) => {
    const a = k.toLowerCase();
    let n = 0;
    while (n < a.length && n < lower.length && a[n] === lower[n]) n++;
    return n >= Math.min(4, a.length, lower.length) && lower.length >= 3;
  };
  const prefixed = known.filter(stem);
  if (prefixed.length === 1) return prefixed[0];
  let best: string | undefined;
  let bestDistance = Number.POSITIVE_INFINITY;
  for (const candidate of known) {
    const d = distance(camel, candidate);
    if (d < bestDistance) {
      best = candidate;
      bestDistance = d;
    }
  }
  return best !== undefined && bestDistance <= Math.max(2, Math.floor(best.length / 3)) ? best : undefined;
}

/**
 * Throws OptimizerConfigError when `options` is not an object or has a key outside `known`.
 * `owner` names the API in the message ('AdamW', 'DynamicLossScaler'); `where` prefixes option
 * names ('groups[0].').
 */
export function checkOptionKeys(owner: string, options: unknown, known: readonly string[], where = ''): void {
  if (options === undefined) return;
  if (typeof options !== 'object' || options === null || Array.isArray(options)) {
    throw new OptimizerConfigError(
      `${owner}: ${where === '' ? 'options' : where.replace(/\.$/, '')} must be an object, got ${describeValue(options)}`,
      where === '' ? 'options' : where.replace(/\.$/, ''),
    );
  }
  for (const key of Object.keys(options)) {
    if (known.includes(key)) continue;
    const suggestion = didYouMean(key, known);
    throw new OptimizerConfigError(
      `${owner}: unknown option '${where}${key}'${suggestion !== undefined ? `; did you mean '${where}${suggestion}'?` : ''} (${owner} takes ${known.join(', ')})`,
      `${where}${key}`,
    );
  }
}
