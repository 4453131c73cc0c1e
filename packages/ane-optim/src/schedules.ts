/**
 * Learning-rate schedules: plain functions of the step, as in MLX. `step` counts the updates already
 * applied (0 for the first update), which is what an optimizer passes when its `learningRate` is a
 * schedule. Every value is computed in float64; the kernels round it to fp32.
 */
import { describeValue, OptimizerConfigError } from './errors';

export type Schedule = (step: number) => number;

function requireFinite(fn: string, option: string, value: number): void {
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    throw new OptimizerConfigError(
      `${fn}: ${option} must be a finite number, got ${describeValue(value)}`,
      option,
    );
  }
}

function requirePositiveInteger(fn: string, option: string, value: number): void {
  if (!Number.isInteger(value) || value < 1) {
    throw new OptimizerConfigError(
      `${fn}: ${option} must be a positive integer number of steps, got ${describeValue(value)}`,
      option,
    );
  }
}

function checkStep(step: number): void {
  if (!Number.isInteger(step) || step < 0) {
    throw new OptimizerConfigError(
      `schedule: step must be a non-negative integer (updates applied so far), got ${describeValue(step)}`,
      'step',
    );
  }
}

/** `lr` at every step. */
export function constant(lr: number): Schedule {
  requireFinite('constant', 'lr', lr);
  return (step) => {
    checkStep(step);
    return lr;
  };
}

/** From `init` to `end` in a straight line over `steps` steps, then `end` (MLX linear_schedule). */
export function linearSchedule(init: number, end: number, steps: number): Schedule {
  requireFinite('linearSchedule', 'init', init);
  requireFinite('linearSchedule', 'end', end);
  requirePositiveInteger('linearSchedule', 'steps', steps);
  return (step) => {
    checkStep(step);
    const t = Math.min(step, steps) / steps;
    return init + t * (end - init);
  };
}

/**
 * Linear warmup into `after`: for step < warmupSteps the rate is `after(0) * (step + 1) / warmupSteps`
 * (llm.c's warmup, so the first update is not wasted at 0 and the last warmup step reaches the
 * peak), then `after(step - warmupSteps)`: the following schedule starts its own count when warmup
 * ends. A number for `after` means a constant peak.
 */
export function linearWarmup(warmupSteps: number, after: Schedule | number): Schedule {
  requirePositiveInteger('linearWarmup', 'warmupSteps', warmupSteps);
  const next = typeof after === 'number' ? constant(after) : after;
  return (step) => {
    checkStep(step);
    if (step < warmupSteps) return (next(0) * (step + 1)) / warmupSteps;
    return next(step - warmupSteps);
  };
}

/**
 * Cosine decay from `init` to `floor` over `decaySteps` steps, then `floor` (MLX cosine_decay with
 * its `end`): `floor + (init - floor) * 0.5 * (1 + cos(pi * min(step, decaySteps) / decaySteps))`.
 */
export function cosineDecay(init: number, decaySteps: number, floor = 0): Schedule {
  requireFinite('cosineDecay', 'init', init);
  requirePositiveInteger('cosineDecay', 'decaySteps', decaySteps);
  requireFinite('cosineDecay', 'floor', floor);
  return (step) => {
    checkStep(step);
    const decay = 0.5 * (1 + Math.cos((Math.PI * Math.min(step, decaySteps)) / decaySteps));
    return floor + (init - floor) * decay;
  };
}

/**
 * `init * gamma ** floor(step / stepSize)`: multiplied by `gamma` every `stepSize` steps (PyTorch
 * StepLR, MLX step_decay).
 */
export function stepDecay(init: number, gamma: number, stepSize: number): Schedule {
  requireFinite('stepDecay', 'init', init);
  requireFinite('stepDecay', 'gamma', gamma);
  requirePositiveInteger('stepDecay', 'stepSize', stepSize);
  return (step) => {
    checkStep(step);
    return init * gamma ** Math.floor(step / stepSize);
  };
}

/**
 * Schedules one after another: `schedules[i]` runs from `boundaries[i - 1]` (0 for the first) and
 * sees the step counted from there (MLX join_schedules). `boundaries` are strictly increasing step
 * numbers, one fewer than the schedules.
 */
export function joinSchedules(schedules: readonly Schedule[], boundaries: readonly number[]): Schedule {
  if (schedules.length === 0) {
    throw new OptimizerConfigError('joinSchedules: pass at least one schedule', 'schedules');
  }
  if (boundaries.length !== schedules.length - 1) {
    throw new OptimizerConfigError(
      `joinSchedules: ${schedules.length} schedules need ${schedules.length - 1} boundaries, got ${boundaries.length}`,
      'boundaries',
    );
  }
  boundaries.forEach((b, i) => {
    if (!Number.isInteger(b) || b < 1 || (i > 0 && b <= (boundaries[i - 1] as number))) {
      throw new OptimizerConfigError(
        `joinSchedules: boundaries must be strictly increasing positive integers, got [${boundaries.join(', ')}]`,
        `boundaries[${i}]`,
      );
    }
  });
  const starts = [0, ...boundaries];
  return (step) => {
    checkStep(step);
    let index = 0;
    while (index + 1 < starts.length && step >= (starts[index + 1] as number)) index++;
    return (schedules[index] as Schedule)(step - (starts[index] as number));
  };
}
