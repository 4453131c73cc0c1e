/**
 * `metrics.jsonl`: one JSON object per line, appended as training runs, so a run that is stopped
 * (or killed) keeps every line written so far and a resumed run appends to the same file.
 *
 * A line is a training record `{ step, loss, lr, tokensPerSec, valLoss?, time }` (`step`: optimizer
 * steps done; `loss`: the mean training loss since the previous record; `tokensPerSec` over the same
 * steps; `valLoss` when the validation loss was measured at that step) or, for the weights a run
 * starts from, `{ step, valLoss, time }` alone.
 */
import { appendFileSync, readFileSync } from 'node:fs';
import { DataError } from '../errors';

export interface MetricsRecord {
  /** Optimizer steps done when the record was written (1 after the first step; 0: the start). */
  step: number;
  /** Mean training loss over the steps since the previous record. */
  loss?: number;
  /** The learning rate of the record's last step. */
  lr?: number;
  /** Training tokens per second over the steps since the previous record. */
  tokensPerSec?: number;
  /** Mean validation loss of the weights after `step` steps, when measured. */
  valLoss?: number;
  /** Milliseconds since the Unix epoch. */
  time?: number;
}

/** Appends records to a metrics.jsonl file (created when missing). */
export class MetricsWriter {
  readonly records: MetricsRecord[] = [];

  constructor(
    readonly file: string,
    previous: readonly MetricsRecord[] = [],
  ) {
    this.records.push(...previous);
  }

  write(record: MetricsRecord): void {
    const line = JSON.stringify({ ...record, time: record.time ?? Date.now() });
    appendFileSync(this.file, `${line}\n`);
    this.records.push(JSON.parse(line) as MetricsRecord);
  }
}

/**
 * Reads a metrics.jsonl file. A last line cut short (the process was killed mid-write) is dropped;
 * any other line that is not a record is a DataError naming the file and the line.
 */
export function readMetrics(file: string): MetricsRecord[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw error;
  }
  const lines = text.split('\n');
  const records: MetricsRecord[] = [];
  let offset = 0;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    const lineOffset = offset;
    offset += Buffer.byteLength(line) + 1;
    if (line.trim() === '') continue;
    const isLast = i === lines.length - 1; // no newline after it: possibly cut short
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch {
      if (isLast) break;
      throw new DataError(
        `metrics file ${file}: line ${i + 1} is not JSON: each line must be one metrics record; remove the line or start a new run directory`,
        { file, offset: lineOffset },
      );
    }
    const record = value as MetricsRecord;
    if (record === null || typeof record !== 'object' || !Number.isInteger(record.step)) {
      throw new DataError(
        `metrics file ${file}: line ${i + 1} has no whole-number 'step': each line must be one metrics record; remove the line or start a new run directory`,
        { file, offset: lineOffset },
      );
    }
    records.push(record);
  }
  return records;
}
