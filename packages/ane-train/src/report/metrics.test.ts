import { appendFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { DataError } from '../errors';
import { MetricsWriter, readMetrics } from './metrics';

const dir = mkdtempSync(join(tmpdir(), 'ane-train-metrics-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('metrics.jsonl', () => {
  it('appends one JSON object per line and reads them back; a missing file reads as no records', () => {
    const file = join(dir, 'a.jsonl');
    expect(readMetrics(file)).toEqual([]);
    const writer = new MetricsWriter(file);
    writer.write({ step: 0, valLoss: 5.5, time: 1 });
    writer.write({ step: 1, loss: 5.4, lr: 0.001, tokensPerSec: 100, time: 2 });
    expect(readMetrics(file)).toEqual([
      { step: 0, valLoss: 5.5, time: 1 },
      { step: 1, loss: 5.4, lr: 0.001, tokensPerSec: 100, time: 2 },
    ]);
    // A second writer (a resumed run) appends.
    new MetricsWriter(file).write({ step: 2, loss: 5.3, time: 3 });
    expect(readMetrics(file).map((r) => r.step)).toEqual([0, 1, 2]);
  });

  it('drops a last line cut short by a kill; any other bad line is a DataError with its offset', () => {
    const file = join(dir, 'b.jsonl');
    writeFileSync(file, '{"step":1,"loss":2}\n{"step":2,"lo');
    expect(readMetrics(file)).toEqual([{ step: 1, loss: 2 }]);
    const bad = join(dir, 'c.jsonl');
    writeFileSync(bad, '{"step":1}\nnot json\n{"step":3}\n');
    const error = (() => {
      try {
        readMetrics(bad);
      } catch (e) {
        return e;
      }
    })() as DataError;
    expect(error).toBeInstanceOf(DataError);
    expect(error.details).toEqual({ file: bad, offset: 11 });
    expect(error.message).toContain('line 2');
    const noStep = join(dir, 'd.jsonl');
    appendFileSync(noStep, '{"loss":1}\n');
    expect(() => readMetrics(noStep)).toThrow(/no whole-number 'step'/);
  });
});
