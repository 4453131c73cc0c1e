import { describe, expect, it } from 'vitest';
import {
  formatDuration,
  formatLearningRate,
  formatRate,
  plainProgressLine,
  sparkline,
  validationLine,
} from './format';
import { estimateRemaining, lossPlot } from './progress';

describe('progress text', () => {
  it('durations, rates and learning rates', () => {
    expect(formatDuration(4_200)).toBe('4s');
    expect(formatDuration(65_000)).toBe('1m05s');
    expect(formatDuration(3_700_000)).toBe('1h01m');
    expect(formatDuration(Number.NaN)).toBe('--');
    expect(formatRate(512.2)).toBe('512');
    expect(formatRate(4123.4)).toBe('4.12k');
    expect(formatRate(41234)).toBe('41.2k');
    expect(formatRate(1.25e6)).toBe('1.25M');
    expect(formatLearningRate(3e-3)).toBe('3.00e-3');
  });

  it('the sparkline spans ▁ (minimum) to █ (maximum) over the last values', () => {
    expect(sparkline([0, 7, 3.5, 1, 6], 10)).toBe('▁█▅▂▇');
    expect(sparkline([1, 2, 3, 4], 2)).toBe('▁█');
    expect(sparkline([2, 2])).toBe('▄▄');
    expect(sparkline([])).toBe('');
  });

  it('one plain line per logged step, and the validation line', () => {
    expect(
      plainProgressLine({ step: 7, total: 100, loss: 2.5, lr: 0.003, tokensPerSec: 2500, etaMs: 65_000 }),
    ).toBe('step   7/100  loss 2.5000  lr 3.00e-3  2.50k tok/s  eta 1m05s');
    expect(validationLine(50, 100, 2.1, 5.5)).toBe('step  50/100  val loss 2.1000 (start 5.5000)');
    expect(validationLine(0, 100, 5.5, 5.5)).toBe('step   0/100  val loss 5.5000');
  });

  it('the ETA is the remaining steps at this process’s pace', () => {
    expect(estimateRemaining(30, 20, 100, 5_000)).toBe(35_000); // 10 steps in 5 s, 70 to go
    expect(Number.isNaN(estimateRemaining(20, 20, 100, 5_000))).toBe(true);
  });

  it('lossPlot draws an asciichart of the losses with their range as labels', () => {
    const plot = lossPlot([5, 4, 3, 2, 1], 60, 4);
    const lines = plot.split('\n');
    expect(lines).toHaveLength(5);
    expect(lines[0]).toContain('5.000');
    expect(lines.at(-1)).toContain('1.000');
    expect(lossPlot([1])).toBe('');
  });
});
