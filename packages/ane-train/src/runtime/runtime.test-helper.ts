/**
 * Shared by the runtime tests: a tiny GQA Llama config, seeded weights and tokens, the float64
 * reference (ane-ir's `evaluate` of the very training graph the session loads, one sequence at a
 * time), and a runnable worker entry built from the current source.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { evaluate } from 'ane-ir';
import type { LlamaConfig } from '../model/config';
import { initParameters } from '../model/parameters';
import { buildTrainingGraph, TRAINING_IO } from '../model/training-graph';

/** hidden 32, 2 layers, 2 query heads sharing 1 KV head (GQA), vocab 64, untied classifier. */
export const TINY: LlamaConfig = Object.freeze({
  model_type: 'llama',
  hidden_size: 32,
  intermediate_size: 64,
  num_hidden_layers: 2,
  num_attention_heads: 2,
  num_key_value_heads: 1,
  head_dim: 16,
  vocab_size: 64,
  rms_norm_eps: 1e-5,
  rope_theta: 10000,
  tie_word_embeddings: false,
  max_position_embeddings: 64,
});

/** Weights with enough spread (std 0.1) that every gradient is well clear of fp16's subnormals. */
export function tinyWeights(seed = 7): Map<string, Float32Array> {
  return initParameters(TINY, { seed, std: 0.1 });
}

/** B sequences of S + 1 ids in [0, vocab), seeded. */
export function tinyTokens(batch: number, seq: number, seed = 1): Int32Array {
  let state = seed >>> 0;
  return Int32Array.from({ length: batch * (seq + 1) }, () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state % TINY.vocab_size;
  });
}

/**
 * The float64 reference: `evaluate` of the training graph for each sequence (inputs = [0..S),
 * targets = [1..S]), averaged over the batch: the loss and d(loss × lossScale)/dparam by HF name.
 */
export function referenceStep(
  weights: ReadonlyMap<string, Float32Array>,
  tokens: Int32Array,
  batch: number,
  seq: number,
  lossScale: number,
): { loss: number; grads: Map<string, Float64Array> } {
  const training = buildTrainingGraph(TINY, { seq });
  const output = (name: string) => training.graph.outputs.find((o) => o.name === name)!.tensor;
  const names = training.parameters.map((p) => p.name);
  const wanted = [output(TRAINING_IO.loss), ...names.map((n) => output(training.gradOutput(n)))];
  const params: Record<string, Float32Array> = {};
  for (const p of training.parameters) params[p.source] = weights.get(p.name)!;
  let loss = 0;
  const grads = new Map(
    training.parameters.map((p) => [p.name, new Float64Array(p.shape.reduce((a, b) => a * b, 1))]),
  );
  for (let b = 0; b < batch; b++) {
    const row = tokens.subarray(b * (seq + 1), (b + 1) * (seq + 1));
    const [l, ...g] = evaluate(wanted, {
      ...params,
      [TRAINING_IO.tokens]: row.slice(0, seq),
      [TRAINING_IO.targets]: row.slice(1),
      [TRAINING_IO.lossScale]: Float32Array.of(lossScale),
    });
    loss += l![0]! / batch;
    names.forEach((name, i) => {
      const sum = grads.get(name)!;
      const gradient = g[i]!;
      for (let j = 0; j < sum.length; j++) sum[j] = sum[j]! + gradient[j]! / batch;
    });
  }
  return { loss, grads };
}

/** max |ours − reference| / max |reference| over one tensor (what the fp16 bound bounds). */
export function normalizedError(ours: Float32Array, reference: Float64Array): number {
  let largest = 0;
  let worst = 0;
  for (let i = 0; i < reference.length; i++) {
    largest = Math.max(largest, Math.abs(reference[i]!));
    const error = Math.abs(ours[i]! - reference[i]!);
    if (!(error <= worst)) worst = error; // NaN sticks
  }
  return worst / largest;
}

const here = dirname(fileURLToPath(import.meta.url));

/**
 * A worker entry a forked Node can run, bundled from the current source (a forked child cannot run
 * TypeScript): esbuild (a root devDependency) bundles worker-main.ts with the packages external,
 * into node_modules/.cache of this package so 'ane-bridge' & co. resolve as in the parent.
 */
export async function buildWorkerEntryForTests(): Promise<string> {
  const { build } = await import('esbuild');
  const outdir = join(here, '../../node_modules/.cache/ane-train-runtime-tests');
  if (!existsSync(outdir)) mkdirSync(outdir, { recursive: true });
  const outfile = join(outdir, `worker-main-${process.pid}.mjs`);
  await build({
    entryPoints: [join(here, 'worker-main.ts')],
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    packages: 'external',
    outfile,
    logLevel: 'error',
  });
  return outfile;
}
