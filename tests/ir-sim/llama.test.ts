/**
 * A Llama block (MHA and GQA, RoPE, SwiGLU) partitioned into ANE kernels and host ops, run the way
 * a runtime runs it (kernels in the simulator, host ops on the reference interpreter), against a
 * float64 evaluation of the same graph.
 */
import {
  evaluate,
  Graph,
  type LlamaBlockOptions,
  llamaBlock,
  partition,
  ropeTables,
  type Tensor,
} from 'ane-ir';
import { describe, expect, it } from 'vitest';
import { executePlan, normals, worstRatio } from './support';

interface Config {
  dim: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  hidden: number;
  seq: number;
  layers: number;
  convention: 'interleaved' | 'rotate-half';
  normBound?: number;
}

function build(config: Config) {
  const g = new Graph();
  const { dim, heads, kvHeads, headDim, hidden, seq } = config;
  const x = g.input('x', [dim, seq], config.normBound === undefined ? {} : { maxAbs: config.normBound });
  const tables = ropeTablesFor(g, config);
  const feeds: Record<string, Float32Array> = { x: normals(dim * seq, 1, 1) };
  let seed = 2;
  const param = (name: string, shape: number[], scale: number, offset = 0) => {
    const tensor = g.param(name, shape);
    const values = normals(
      shape.reduce((a, b) => a * b, 1),
      scale,
      seed++,
    );
    feeds[tensor.name] = offset === 0 ? values : values.map((v) => v + offset);
    return tensor;
  };
  let h: Tensor = x;
  for (let l = 0; l < config.layers; l++) {
    const p = (n: string, shape: number[], scale: number, offset = 0) =>
      param(`layers.${l}.${n}`, shape, scale, offset);
    const options: LlamaBlockOptions = { heads, kvHeads, rope: tables, name: `layers.${l}` };
    h = llamaBlock(
      h,
      {
        attnNorm: p('attn_norm', [dim], 0.1, 1),
        ffnNorm: p('ffn_norm', [dim], 0.1, 1),
        wq: p('wq', [heads * headDim, dim], 1 / Math.sqrt(dim)),
        wk: p('wk', [kvHeads * headDim, dim], 1 / Math.sqrt(dim)),
        wv: p('wv', [kvHeads * headDim, dim], 1 / Math.sqrt(dim)),
        wo: p('wo', [dim, heads * headDim], 1 / Math.sqrt(heads * headDim)),
        w1: p('w1', [hidden, dim], 1 / Math.sqrt(dim)),
        w3: p('w3', [hidden, dim], 1 / Math.sqrt(dim)),
        w2: p('w2', [dim, hidden], 1 / Math.sqrt(hidden)),
      },
      options,
    );
  }
  g.output('out', h);
  return { graph: g, feeds, out: h };
}

function ropeTablesFor(g: Graph, config: Config) {
  return ropeTables(g, config.seq, config.headDim, { convention: config.convention });
}

const BASE: Config = {
  dim: 64,
  heads: 4,
  kvHeads: 4,
  headDim: 16,
  hidden: 128,
  seq: 32,
  layers: 2,
  convention: 'interleaved',
};

const configs: [string, Config][] = [
  ['MHA, interleaved RoPE', BASE],
  ['GQA 4:2, rotate-half RoPE', { ...BASE, kvHeads: 2, convention: 'rotate-half' }],
  ['GQA 4:1', { ...BASE, kvHeads: 1 }],
  [
    'GQA 8:2 with headDim != dim / heads (Wo staged untransposed)',
    { ...BASE, heads: 8, kvHeads: 2, headDim: 32 },
  ],
];

describe('a Llama block through the partitioner, on the simulator', () => {
  for (const [label, config] of configs) {
    it(`${label}: matches a float64 evaluation`, () => {
      const { graph, feeds, out } = build(config);
      const plan = partition(graph);
      const values = executePlan(plan, feeds);
      const got = values.get('out')!; // the graph output's own name
      const [reference] = evaluate([out], feeds);
      const worst = worstRatio(got, reference!, 0.03, 0.03);
      console.log(
        `${label}: ${plan.kernels.length} kernel runs of ${plan.programs.length} programs, worst error ${(worst * 100).toFixed(1)}% of (atol 0.03, rtol 0.03)`,
      );
      expect(worst).toBeLessThanOrEqual(1);
      // Identical layers share their programs.
      expect(plan.programs.length).toBeLessThan(plan.kernels.length);
    });
  }

  it('keeps the RMSNorms on the ANE when the input bound proves the sums of squares fit', () => {
    const { graph, feeds, out } = build({ ...BASE, layers: 1, normBound: 8 });
    // Only the first norm reads the bounded input; the second norm's input (x + attention) has no bound.
    const plan = partition(graph);
    const first = plan.placements.find((p) => p.node === 'layers.0.attn_norm.ss')!;
    const second = plan.placements.find((p) => p.node === 'layers.0.ffn_norm.ss')!;
    expect(first.device).toBe('ane');
    expect(second).toMatchObject({ device: 'host', ruleId: 'ir-fp16-sum-of-squares' });
    const values = executePlan(plan, feeds);
    const [reference] = evaluate([out], feeds);
    expect(worstRatio(values.get('out')!, reference!, 0.03, 0.03)).toBeLessThanOrEqual(1);
  });
});
