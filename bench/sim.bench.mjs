// `pnpm bench sim`: the simulator on a Stories15M-sized layer kernel. The reference is the same
// layer's matmul FLOPs done as bare GEMMs through the simulator's own GEMM in the same run, so the
// ratio is how close the interpreter gets to its arithmetic ceiling (1.0 = no overhead at all).
import { openDevice, STORIES15M_LAYER, sgemm, storiesLayerProgram } from 'ane-bridge';
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
printTable(rows);
writeResults('sim', rows);
kernel.dispose();
device.dispose();
