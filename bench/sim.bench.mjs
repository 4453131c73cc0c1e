// `pnpm bench sim`: the simulator on a Stories15M-sized layer kernel, and a whole Stories15M forward
// (batch 1, seq 256) through `device.load`. The reference of each is the same matmul FLOPs done as
// bare GEMMs (the host sgemm) in the same run, so the ratio is how close the simulator gets to its
// arithmetic ceiling (1.0 = no overhead at all).
import { formatProfile, openDevice, STORIES15M_LAYER, sgemm, storiesLayerProgram } from 'ane-bridge';
import { embedding, Graph, linear, llamaBlock, partition, rmsNorm, ropeTables } from 'ane-ir';
import { medianMs, printTable, writeResults } from './lib.mjs';

const config = STORIES15M_LAYER;
const { program, flops, input } = storiesLayerProgram(config);
const device = openDevice({ backend: 'sim' });

const compileStart = performance.now();
const kernel = device.compile(program);
const compileMs = performance.now() - compileStart;
kernel.input('x').write(input);
const runMs = medianMs(() => kernel.runSync());

// The same GEMMs the layer does, in float32 with no fp16 rounding or data movement around them.
const gemmMs = (() => {
  const { dim, hidden, seq, heads } = config;
  const headDim = dim / heads;
  const shapes = [
    ...Array(4).fill([dim, seq, dim]),
    ...Array(2).fill([hidden, seq, dim]),
    [dim, seq, hidden],
    ...Array(heads).fill([seq, seq, headDim]),
    ...Array(heads).fill([seq, headDim, seq]),
  ];
  const buffers = shapes.map(([m, n, k]) => ({
    m,
    n,
    k,
    a: new Float32Array(m * k).fill(0.5),
    b: new Float32Array(k * n).fill(0.25),
    c: new Float32Array(m * n),
  }));
  return medianMs(() => {
    for (const { m, n, k, a, b, c } of buffers) sgemm(false, false, m, n, k, 1, a, k, b, n, 0, c, n);
  });
})();

const gflops = flops / (runMs * 1e6);
const rows = [
  { name: 'stories15m-layer-forward compile', config, value: compileMs, unit: 'ms' },
  {
    name: 'stories15m-layer-forward run',
    config,
    value: gflops,
    unit: 'GFLOP/s',
    reference: 'same GEMMs, bare',
    referenceValue: flops / (gemmMs * 1e6),
    ratio: gemmMs / runMs,
  },
  { name: 'stories15m-layer-forward run', config, value: runMs, unit: 'ms' },
];
kernel.dispose();

// ---- a Stories15M forward through device.load ----------------------------------------------------

/** Stories15M (llama2.c): dim 288, 6 layers, 6 heads, FFN 768, vocab 32000; tied classifier. */
const S15 = { dim: 288, heads: 6, hidden: 768, layers: 6, vocab: 32000, seq: 256 };

function stories15mForward({ dim, heads, hidden, layers, vocab, seq }) {
  const g = new Graph();
  const tokens = g.input('tokens', [seq], { dtype: 'int32' });
  const table = g.param('tok_embeddings', [vocab, dim]);
  const rope = ropeTables(g, seq, dim / heads);
  let h = embedding(tokens, table, { name: 'embed' });
  for (let l = 0; l < layers; l++) {
    const p = (name, shape) => g.param(`layers.${l}.${name}`, shape);
    const weights = {
      attnNorm: p('attention_norm', [dim]),
      ffnNorm: p('ffn_norm', [dim]),
      wq: p('wq', [dim, dim]),
      wk: p('wk', [dim, dim]),
      wv: p('wv', [dim, dim]),
      wo: p('wo', [dim, dim]),
      w1: p('w1', [hidden, dim]),
      w3: p('w3', [hidden, dim]),
      w2: p('w2', [dim, hidden]),
    };
    h = llamaBlock(h, weights, { heads, kvHeads: heads, rope, name: `layers.${l}` });
  }
  g.output('logits', linear(rmsNorm(h, g.param('norm', [dim]), { name: 'norm' }), table, { name: 'output' }));
  return g;
}

/** Seeded values ~ U(-scale, scale) (a weight init; the numbers do not change the timing). */
function uniform(count, scale, seed) {
  let state = seed >>> 0;
  const out = new Float32Array(count);
  for (let i = 0; i < count; i++) {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    out[i] = ((state / 2 ** 32) * 2 - 1) * scale;
  }
  return out;
}

const plan = partition(stories15mForward(S15));
const executable = device.load(plan);
let seed = 1;
for (const source of executable.sources) {
  if (source.role !== 'param') continue;
  const values = uniform(source.length, 0.05, seed++);
  executable.write(source.name, source.shape.length === 1 ? values.map((v) => 1 + v) : values);
}
const tokens = Int32Array.from({ length: S15.seq }, (_, i) => (i * 7919) % S15.vocab);
await executable.run({ tokens }); // warm-up: first-touch of every buffer, weights staged
const forwards = [];
for (let i = 0; i < 5; i++) {
  const t0 = performance.now();
  await executable.run({ tokens });
  forwards.push({ ms: performance.now() - t0, profile: executable.profile });
}
forwards.sort((a, b) => a.ms - b.ms);
const { ms: forwardMs, profile } = forwards[2];

// The forward's matmuls as bare GEMMs: per layer Wq, Wk, Wv, Wo, W1, W3, W2 and per head QKᵀ and
// PV, then the classifier.
const forwardGemmMs = (() => {
  const { dim, heads, hidden, layers, vocab, seq } = S15;
  const headDim = dim / heads;
  const layer = [
    ...Array(4).fill([dim, seq, dim]),
    ...Array(2).fill([hidden, seq, dim]),
    [dim, seq, hidden],
    ...Array(heads).fill([seq, seq, headDim]),
    ...Array(heads).fill([seq, headDim, seq]),
  ];
  const shapes = [...Array(layers).fill(layer).flat(), [vocab, seq, dim]];
  const buffers = new Map();
  const bufferFor = ([m, n, k]) => {
    const key = `${m}x${n}x${k}`;
    if (!buffers.has(key))
      buffers.set(key, {
        a: new Float32Array(m * k).fill(0.5),
        b: new Float32Array(k * n).fill(0.25),
        c: new Float32Array(m * n),
      });
    return buffers.get(key);
  };
  return medianMs(() => {
    for (const [m, n, k] of shapes) {
      const { a, b, c } = bufferFor([m, n, k]);
      sgemm(false, false, m, n, k, 1, a, k, b, n, 0, c, n);
    }
  });
})();

const forwardConfig = {
  model: 'stories15M',
  batch: 1,
  seq: S15.seq,
  programs: plan.programs.length,
  kernelRuns: plan.kernels.length,
};
rows.push(
  {
    name: 'stories15m-forward device.load',
    config: forwardConfig,
    value: forwardMs,
    unit: 'ms',
    reference: 'its GEMMs, bare',
    referenceValue: forwardGemmMs,
    ratio: forwardGemmMs / forwardMs,
  },
  {
    name: 'stories15m-forward staging share',
    config: forwardConfig,
    value: (100 * profile.stagingMs) / profile.totalMs,
    unit: '%',
  },
);
printTable(rows);
console.log(`\nStories15M forward, profile of the median run:\n${formatProfile(profile)}`);
writeResults('sim', rows);
executable.dispose();
device.dispose();
