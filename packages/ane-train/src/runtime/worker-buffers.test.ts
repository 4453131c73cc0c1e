/**
 * What crosses to a worker process. Weights usually are views into one optimizer arena and a batch
 * may be a view into a whole token file: Node's advanced IPC serialization writes a typed array's
 * own bytes only (not the rest of its buffer), so the worker session sends them as they are, with
 * no copy. These tests hold that assumption: the serialized size of a view, and a worker fed views
 * into one arena and one token buffer giving the in-process session's results bit for bit.
 */
import { serialize } from 'node:v8';
import { beforeAll, describe, expect, it } from 'vitest';
import { buildWorkerEntryForTests, TINY, tinyTokens, tinyWeights } from './runtime.test-helper';
import { openSession } from './session';
import { openWorkerSession } from './worker-session';

let entry: string;
beforeAll(async () => {
  entry = await buildWorkerEntryForTests();
});

describe('views crossing to a worker', () => {
  it('serialize a view as its own bytes, not its whole buffer', () => {
    const file = new Int32Array(1 << 20); // 4 MiB
    expect(serialize(file.subarray(1000, 1018)).length).toBeLessThan(256);
  });

  it('weights as views into one arena and a batch inside a larger buffer give the in-process results', async () => {
    const spec = { config: TINY, seq: 8, batch: 2, backend: 'sim' as const };
    const weights = tinyWeights();
    const total = [...weights.values()].reduce((n, w) => n + w.length, 0);
    const arena = new Float32Array(total + 7);
    const views = new Map<string, Float32Array>();
    let offset = 7;
    for (const [name, values] of weights) {
      const view = arena.subarray(offset, offset + values.length);
      view.set(values);
      views.set(name, view);
      offset += values.length;
    }
    const tokens = tinyTokens(2, 8, 4);
    const file = new Int32Array(tokens.length + 100).fill(TINY.vocab_size + 5); // out of vocabulary around it
    file.set(tokens, 50);
    const here = await openSession(spec);
    const there = await openWorkerSession(spec, { entry });
    try {
      await here.writeWeights(weights);
      await there.writeWeights(views);
      const a = await here.step(tokens, 1024);
      const b = await there.step(file.subarray(50, 50 + tokens.length), 1024);
      expect(b.loss).toBe(a.loss);
      for (const [name, grad] of a.grads) expect(b.grads.get(name), name).toEqual(grad);
    } finally {
      await here.dispose();
      await there.dispose();
    }
  });
});
