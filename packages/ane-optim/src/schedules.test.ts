import { describe, expect, it } from 'vitest';
import { OptimizerConfigError } from './errors';
import { constant, cosineDecay, joinSchedules, linearSchedule, linearWarmup, stepDecay } from './schedules';

const values = (schedule: (step: number) => number, steps: number[]) => steps.map(schedule);

describe('schedules (hand-computed)', () => {
  it('constant', () => {
    expect(values(constant(0.1), [0, 1, 1000])).toEqual([0.1, 0.1, 0.1]);
  });

  it('linearSchedule goes from init to end in `steps` steps, then stays', () => {
    expect(values(linearSchedule(0, 1, 4), [0, 1, 2, 3, 4, 9])).toEqual([0, 0.25, 0.5, 0.75, 1, 1]);
  });

  it('linearWarmup ramps (step + 1) / warmup of the next schedule, which then starts its own count', () => {
    const schedule = linearWarmup(4, stepDecay(1, 0.5, 2));
    // warmup: 1/4, 2/4, 3/4, 4/4 of after(0) = 1; then after(0), after(1) = 1, after(2) = 0.5 ...
    expect(values(schedule, [0, 1, 2, 3, 4, 5, 6, 8])).toEqual([0.25, 0.5, 0.75, 1, 1, 1, 0.5, 0.25]);
    expect(values(linearWarmup(2, 0.5), [0, 1, 2])).toEqual([0.25, 0.5, 0.5]);
  });

  it('cosineDecay follows half a cosine to its floor, then stays there', () => {
    const schedule = cosineDecay(1, 4, 0.2);
    // floor + (init - floor) * (1 + cos(pi * t / 4)) / 2
    expect(schedule(0)).toBe(1);
    expect(schedule(1)).toBeCloseTo(0.2 + 0.8 * ((1 + Math.SQRT1_2) / 2), 15);
    expect(schedule(2)).toBeCloseTo(0.6, 15);
    expect(schedule(3)).toBeCloseTo(0.2 + 0.8 * ((1 - Math.SQRT1_2) / 2), 15);
    expect(schedule(4)).toBeCloseTo(0.2, 15);
    expect(schedule(100)).toBeCloseTo(0.2, 15);
    expect(cosineDecay(2, 10)(10)).toBeCloseTo(0, 15);
  });

  it('stepDecay multiplies by gamma every stepSize steps', () => {
    expect(values(stepDecay(0.8, 0.5, 3), [0, 2, 3, 5, 6, 9])).toEqual([0.8, 0.8, 0.4, 0.4, 0.2, 0.1]);
  });

  it('joinSchedules hands over at each boundary, each part counting from its start', () => {
    const schedule = joinSchedules([linearSchedule(0, 1, 2), constant(0.3), stepDecay(1, 0.1, 1)], [2, 4]);
    expect(values(schedule, [0, 1, 2, 3, 4, 5, 6])).toEqual([0, 0.5, 0.3, 0.3, 1, 0.1, 0.1 * 0.1]);
  });

  it('warmup then cosine (the usual LLM schedule), written both ways, agrees', () => {
    const warmup = linearWarmup(10, cosineDecay(3e-4, 90, 3e-5));
    const joined = joinSchedules([linearSchedule(3e-5, 3e-4, 10), cosineDecay(3e-4, 90, 3e-5)], [10]);
    for (let step = 10; step < 120; step++) expect(warmup(step)).toBe(joined(step));
    expect(warmup(0)).toBeCloseTo(3e-5, 18);
  });

  it('rejects bad arguments with a typed error naming the option', () => {
    expect(() => cosineDecay(1, 0)).toThrow(OptimizerConfigError);
    expect(() => cosineDecay(1, 0)).toThrow(/decaySteps must be a positive integer/);
    expect(() => linearWarmup(2.5, 1)).toThrow(/warmupSteps/);
    expect(() => constant(Number.NaN)).toThrow(/lr must be a finite number, got NaN/);
    expect(() => joinSchedules([constant(1), constant(2)], [])).toThrow(/2 schedules need 1 boundaries/);
    expect(() => joinSchedules([constant(1), constant(2), constant(3)], [5, 5])).toThrow(
      /strictly increasing/,
    );
    expect(() => constant(1)(-1)).toThrow(/step must be a non-negative integer/);
    try {
      stepDecay(1, 0.5, 0);
    } catch (error) {
      expect((error as OptimizerConfigError).option).toBe('stepSize');
    }
  });
});
