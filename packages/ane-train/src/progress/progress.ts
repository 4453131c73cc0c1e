/**
 * Training progress on a terminal or in a log. In a TTY: a cli-progress bar with the step, loss, a
 * sparkline of the recent losses, the learning rate, tokens/s and the ETA, redrawn in place, and at
 * each validation an asciichart plot of the loss so far printed above it. Anywhere else (CI, a pipe,
 * a file): one plain line per logged step and per validation, nothing redrawn.
 */
import asciichartModule from 'asciichart';
import cliProgress from 'cli-progress';
import {
  formatDuration,
  formatLearningRate,
  formatRate,
  plainProgressLine,
  sparkline,
  validationLine,
} from './format';

// asciichart is CommonJS: its module.exports is the default import in ESM and under tsup's interop.
const asciichart = asciichartModule as unknown as typeof import('asciichart');

export interface StepUpdate {
  /** Optimizer steps done. */
  step: number;
  loss: number;
  lr: number;
  tokensPerSec: number;
}

export interface TrainingProgress {
  /** After every optimizer step (the TTY bar redraws; plain output prints every `logEvery` steps). */
  step(update: StepUpdate & { logged: boolean; lossForLine: number; tokensPerSecForLine: number }): void;
  /** A validation loss measured after `step` steps. */
  validation(step: number, valLoss: number): void;
  /** A message on its own line (above the bar in a TTY). */
  message(text: string): void;
  /** Leaves the bar as it is and ends the redrawing. */
  stop(): void;
}

export interface ProgressOptions {
  /** Draw the live bar (a terminal) or print plain lines. */
  tty: boolean;
  /** Where plain lines go (each call one or more whole lines). */
  write(text: string): void;
  /** The terminal stream for the live bar (tty only). */
  stream?: NodeJS.WritableStream;
  /** The run's last step. */
  total: number;
  /** Steps already done when this process started (a resumed run). */
  startStep: number;
  /** Losses for the chart: the run's history so far (resume). */
  history?: readonly number[];
  /** The validation loss of the starting weights, for the lines that compare with it. */
  initialValLoss?: number;
  now?: () => number;
}

/** How many milliseconds the remaining steps take at the rate of this process's steps so far. */
export function estimateRemaining(
  stepsDone: number,
  startStep: number,
  total: number,
  elapsedMs: number,
): number {
  const done = stepsDone - startStep;
  if (done <= 0) return Number.NaN;
  return (elapsedMs / done) * Math.max(0, total - stepsDone);
}

/** An asciichart plot of `losses` (at most `width` points, averaged into buckets), `height` rows. */
export function lossPlot(losses: readonly number[], width = 60, height = 8): string {
  const finite = losses.filter(Number.isFinite);
  if (finite.length < 2) return '';
  const buckets = Math.min(width, finite.length);
  const series: number[] = [];
  for (let b = 0; b < buckets; b++) {
    const from = Math.floor((b * finite.length) / buckets);
    const to = Math.max(from + 1, Math.floor(((b + 1) * finite.length) / buckets));
    let sum = 0;
    for (let i = from; i < to; i++) sum += finite[i]!;
    series.push(sum / (to - from));
  }
  return asciichart.plot(series, { height, format: (x: number) => x.toFixed(3).padStart(8) });
}

export function createProgress(options: ProgressOptions): TrainingProgress {
  const now = options.now ?? (() => performance.now());
  const started = now();
  const losses: number[] = [...(options.history ?? [])];
  const eta = (step: number) => estimateRemaining(step, options.startStep, options.total, now() - started);
  if (!options.tty) {
    return {
      step(update) {
        losses.push(update.loss);
        if (!update.logged) return;
        options.write(
          `${plainProgressLine({
            step: update.step,
            total: options.total,
            loss: update.lossForLine,
            lr: update.lr,
            tokensPerSec: update.tokensPerSecForLine,
            etaMs: eta(update.step),
          })}\n`,
        );
      },
      validation(step, valLoss) {
        options.write(`${validationLine(step, options.total, valLoss, options.initialValLoss)}\n`);
      },
      message(text) {
        options.write(text.endsWith('\n') ? text : `${text}\n`);
      },
      stop() {},
    };
  }
  const bars = new cliProgress.MultiBar(
    {
      format:
        'step {value}/{total} {bar} {percentage}% | loss {loss} {spark} | lr {lr} | {rate} tok/s | ETA {etaText}',
      barsize: 24,
      hideCursor: true,
      // Ctrl-C and SIGTERM are the train command's to handle: never let cli-progress take them
      // (with gracefulExit it would take the first SIGTERM, and the process would not end). Its
      // default is already false; stated so that it stays so.
      gracefulExit: false,
      clearOnComplete: false,
      stopOnComplete: false,
      etaBuffer: 50,
      fps: 10,
      ...(options.stream !== undefined ? { stream: options.stream as NodeJS.WriteStream } : {}),
    },
    cliProgress.Presets.shades_classic,
  );
  const payload = (update?: StepUpdate, step = options.startStep) => ({
    loss: update !== undefined ? update.loss.toFixed(4) : '-',
    spark: sparkline(losses, 24),
    lr: update !== undefined ? formatLearningRate(update.lr) : '-',
    rate: update !== undefined ? formatRate(update.tokensPerSec) : '-',
    etaText: formatDuration(eta(step)),
  });
  const bar = bars.create(options.total, options.startStep, payload());
  return {
    step(update) {
      losses.push(update.loss);
      bar.update(update.step, payload(update, update.step));
    },
    validation(step, valLoss) {
      const plot = lossPlot(losses);
      bars.log(
        `${plot !== '' ? `training loss so far:\n${plot}\n` : ''}${validationLine(step, options.total, valLoss, options.initialValLoss)}\n`,
      );
    },
    message(text) {
      bars.log(text.endsWith('\n') ? text : `${text}\n`);
    },
    stop() {
      // Draw once more: messages logged since the last redraw (the last validation) come out.
      bars.update();
      bars.stop();
    },
  };
}
