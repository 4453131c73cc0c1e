/** Every ane-ir composite differentiates through the table (or its composite rule) correctly. */
import {
  avgPool,
  causalSelfAttention,
  convTranspose2d,
  embedding,
  Graph,
  gelu,
  layerNorm,
  maxPool,
  mean,
  rope,
  ropeTables,
  silu,
  type Tensor,
} from 'ane-ir';
import { describe, it } from 'vitest';
import { expectGradientsMatch, feedsFor, weightedSum } from './testing/check';

function check(
  shapes: number[][],
  build: (graph: Graph, ...xs: Tensor[]) => Tensor,
  tolerance: { reference?: number } = {},
): void {
  const graph = new Graph();
  const xs = shapes.map((shape, i) => graph.input(`x${i}`, shape, { dtype: 'fp32' }));
  const loss = weightedSum(build(graph, ...xs));
  expectGradientsMatch({ loss, wrt: xs, feeds: feedsFor(xs, 41) }, tolerance);
}

describe('composites pass gradcheck', () => {
  it('layerNorm with gain and bias', () => check([[6, 4], [6], [6]], (_, x, g, b) => layerNorm(x!, g!, b)));
  it('gelu (tanh and sigmoid approximations), silu', () => {
    check([[3, 4]], (_, x) => gelu(x!));
    check([[3, 4]], (_, x) => gelu(x!, { approximation: 'sigmoid' }));
    check([[3, 4]], (_, x) => silu(x!));
  });
  it('mean, avgPool and maxPool', () => {
    // dy · (1/12) on constants folds into one fp32 constant: rounded like the device stores it.
    check([[3, 4]], (_, x) => mean(x!, [0, 1], { keepDims: true }), { reference: 1e-7 });
    check([[2, 8]], (_, x) => avgPool(x!, { kernel: 2 }));
    check([[2, 8]], (_, x) => maxPool(x!, { kernel: 4 }));
  });
  it('rope in both conventions', () => {
    for (const convention of ['interleaved', 'rotate-half'] as const) {
      const graph = new Graph();
      const x = graph.input('x', [2, 3, 4], { dtype: 'fp16' });
      const loss = weightedSum(rope(x, ropeTables(graph, 3, 4, { convention })));
      expectGradientsMatch({ loss, wrt: [x], feeds: feedsFor([x], 43) });
    }
  });
  it('causal self-attention without RoPE (MHA), through the recomputed heads', () => {
    const graph = new Graph();
    const x = graph.input('x', [8, 4]);
    const p = (name: string, shape: number[]) => graph.param(name, shape);
    const weights = { wq: p('wq', [8, 8]), wk: p('wk', [8, 8]), wv: p('wv', [8, 8]), wo: p('wo', [8, 8]) };
    const loss = weightedSum(causalSelfAttention(x, weights, { heads: 2 }));
    const wrt = [x, ...Object.values(weights)];
    expectGradientsMatch({ loss, wrt, feeds: feedsFor(wrt, 44, -0.7, 0.7) });
  });
  it('convTranspose2d with respect to its input', () => {
    const graph = new Graph();
    const x = graph.input('x', [1, 2, 3, 3], { dtype: 'fp32' });
    const weights = Array.from({ length: 2 * 3 * 2 * 2 }, (_, i) => ((i * 7) % 5) / 4 - 0.5);
    const w = graph.constant(weights, [2, 3, 2, 2], { dtype: 'fp32' });
    const loss = weightedSum(convTranspose2d(x, w, { pad: [1, 0] }));
    expectGradientsMatch({ loss, wrt: [x], feeds: feedsFor([x], 45) });
  });
  it('embedding: the table gradient (scatter-add of repeated tokens)', () => {
    const graph = new Graph();
    const table = graph.param('table', [6, 4], { dtype: 'fp32' });
    const tokens = graph.input('tokens', [5], { dtype: 'int32' });
    const loss = weightedSum(embedding(tokens, table));
    const feeds = feedsFor([table], 46);
    (feeds as Map<Tensor, Float64Array>).set(tokens, Float64Array.from([1, 4, 1, 0, 4]));
    expectGradientsMatch({ loss, wrt: [table], feeds });
  });
});
