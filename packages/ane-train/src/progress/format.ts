/** Plain-text pieces of the training progress: durations, rates, a one-line sparkline, a log line. */

/** `65_000` → '1m05s'; `3_700_000` → '1h01m'; `4_200` → '4s'; NaN or negative → '--'. */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return '--';
  const seconds = Math.round(ms / 1000);
  if (seconds < 60) return `${seconds}s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes}m${String(seconds % 60).padStart(2, '0')}s`;
  return `${Math.floor(minutes / 60)}h${String(minutes % 60).padStart(2, '0')}m`;
}

/** `4123.4` → '4.1k'; `512.2` → '512'; `1.25e6` → '1.25M'. */
export function formatRate(perSecond: number): string {
  if (!Number.isFinite(perSecond)) return '--';
  if (perSecond >= 1e6) return `${(perSecond / 1e6).toFixed(2)}M`;
  if (perSecond >= 1e4) return `${(perSecond / 1e3).toFixed(1)}k`;
  if (perSecond >= 1e3) return `${(perSecond / 1e3).toFixed(2)}k`;
  return perSecond.toFixed(0);
}

/** A learning rate in 3 significant digits: 3e-3 → '3.00e-3'. */
export function formatLearningRate(lr: number): string {
  return lr.toExponential(2).replace('e+', 'e');
}

const BLOCKS = '▁▂▃▄▅▆▇█';

/**
 * The last `width` values as a one-line sparkline of block characters, scaled between their minimum
 * (▁) and maximum (█). Non-finite values are shown as a space.
 */
export function sparkline(values: readonly number[], width = 24): string {
  const shown = values.slice(-width);
  const finite = shown.filter(Number.isFinite);
  if (finite.length === 0) return '';
  const min = Math.min(...finite);
  const max = Math.max(...finite);
  return shown
    .map((v) => {
      if (!Number.isFinite(v)) return ' ';
      const level = max === min ? 3 : Math.round(((v - min) / (max - min)) * (BLOCKS.length - 1));
      return BLOCKS[level];
    })
    .join('');
}

export interface ProgressState {
  /** Optimizer steps done. */
  step: number;
  total: number;
  /** The training loss to show (e.g. the mean since the last line). */
  loss: number;
  lr: number;
  tokensPerSec: number;
  /** Estimated milliseconds to the end. */
  etaMs: number;
}

/** One plain progress line (no colour, no carriage return): what a pipe or a CI log gets. */
export function plainProgressLine(state: ProgressState): string {
  const width = String(state.total).length;
  return [
    `step ${String(state.step).padStart(width)}/${state.total}`,
    `loss ${state.loss.toFixed(4)}`,
    `lr ${formatLearningRate(state.lr)}`,
    `${formatRate(state.tokensPerSec)} tok/s`,
    `eta ${formatDuration(state.etaMs)}`,
  ].join('  ');
}

/** The validation line: `step 200/1000  val loss 2.1345 (start 5.5452)`. */
export function validationLine(step: number, total: number, valLoss: number, initial?: number): string {
  const width = String(total).length;
  const start = initial !== undefined && step > 0 ? ` (start ${initial.toFixed(4)})` : '';
  return `step ${String(step).padStart(width)}/${total}  val loss ${valLoss.toFixed(4)}${start}`;
}
