/**
 * A stack of Llama blocks (MHA or GQA, RoPE, SwiGLU) on an input x `[dim, seq]`, with seeded random
 * weights rounded to fp16: the model the ir-sim suites run through `device.load`.
 */
import { Graph, type LlamaBlockOptions, llamaBlock, ropeTables, type Tensor } from 'ane-ir';
import { normals } from './support';

export interface Config {
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

export function build(config: Config) {
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

export const BASE: Config = {
  dim: 64,
  heads: 4,
  kvHeads: 4,
  headDim: 16,
  hidden: 128,
  seq: 32,
  layers: 2,
  convention: 'interleaved',
};
