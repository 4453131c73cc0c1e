/** Range checks for hyper-parameters, shared by the optimizers. */
import { describeValue, OptimizerConfigError } from '../errors';

export function checkRange(
  optimizer: string,
  option: string,
  value: unknown,
  {
    min,
    max,
    minInclusive = true,
    maxInclusive = true,
  }: { min: number; max: number; minInclusive?: boolean; maxInclusive?: boolean },
): void {
  const ok =
    typeof value === 'number' &&
    Number.isFinite(value) &&
    (minInclusive ? value >= min : value > min) &&
    (maxInclusive ? value <= max : value < max);
  if (!ok) {
    const range = `${minInclusive ? '[' : '('}${min}, ${max === Number.POSITIVE_INFINITY ? 'inf' : max}${maxInclusive ? ']' : ')'}`;
    throw new OptimizerConfigError(
      `${optimizer}: ${option} must be in ${range}, got ${describeValue(value)}`,
      option,
    );
  }
}

export function checkBoolean(optimizer: string, option: string, value: unknown): void {
  if (typeof value !== 'boolean') {
    throw new OptimizerConfigError(
      `${optimizer}: ${option} must be true or false, got ${describeValue(value)}`,
      option,
    );
  }
}

/** betas: [beta1, beta2], each in [0, 1). */
export function checkBetas(optimizer: string, option: string, value: unknown): void {
  if (!Array.isArray(value) || value.length !== 2) {
    throw new OptimizerConfigError(
      `${optimizer}: ${option} must be [beta1, beta2], got ${describeValue(value)}`,
      option,
    );
  }
  checkRange(optimizer, `${option}[0]`, value[0], { min: 0, max: 1, maxInclusive: false });
  checkRange(optimizer, `${option}[1]`, value[1], { min: 0, max: 1, maxInclusive: false });
}

export const NON_NEGATIVE = { min: 0, max: Number.POSITIVE_INFINITY } as const;
