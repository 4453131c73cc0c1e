/**
 * Every conformance case, rebuilt as a graph with the public ane-ir API, lowered and printed by the
 * IR, and run in the simulator against the case's expected outputs within its tolerance. The
 * emitted weight blobs must equal the corpus blob files byte for byte. Each case also runs as a
 * plan through `device.load`, fed the values its packed inputs hold.
 */
import { compareOutput, findCaseDirs, loadCase } from 'ane-bridge';
import {
  add,
  cast,
  causalMask,
  conv2d,
  dequantize,
  Graph,
  type LoweredKernel,
  type LowerOptions,
  linear,
  lowerGraph,
  matmul,
  mergeHeads,
  mul,
  partition,
  quantize,
  reduceSum,
  reshape,
  rmsNorm,
  rope,
  ropeTables,
  softmax,
  splitHeads,
  sub,
  swigluParts,
  transpose,
  unpackOutput,
} from 'ane-ir';
import { readBlobTensor } from 'ane-ir/mil';
import { describe, expect, it } from 'vitest';
import { CONFORMANCE_DIR } from '../../tools/testing/corpus';
import { decode, executePlan, runOnSim } from './support';

const CORPUS = CONFORMANCE_DIR;

type Weights = ReadonlyMap<string, Uint8Array>;

function fp16Blob(weights: Weights, file: string, count: number, offset = 64): Uint16Array {
  return readBlobTensor(weights.get(`@model_path/weights/${file}`)!, offset, {
    dtype: 'fp16',
    elementCount: count,
  });
}

function int8Blob(weights: Weights, file: string, count: number, offset = 64): Int8Array {
  return readBlobTensor(weights.get(`@model_path/weights/${file}`)!, offset, {
    dtype: 'int8',
    elementCount: count,
  });
}

interface Built {
  graph: Graph;
  options?: LowerOptions;
}

/** The graph of each case, from the case's weights (as the public API builds it). */
const BUILDERS: Record<string, (weights: Weights) => Built> = {
  A(weights) {
    const g = new Graph();
    const x = g.input('x', [64, 32]);
    const w = g.param('W', [128, 64], {
      trainable: false,
      data: fp16Blob(weights, 'w.bin', 128 * 64),
      blobFile: 'w.bin',
    });
    g.output('out', linear(x, w));
    return { graph: g };
  },
  A2(weights) {
    const g = new Graph();
    const x = g.input('x', [64, 32], { dtype: 'fp32' });
    const w = g.param('W', [128, 64], {
      trainable: false,
      data: fp16Blob(weights, 'w.bin', 128 * 64),
      blobFile: 'w.bin',
    });
    g.output('y', cast(linear(cast(x, 'fp16'), w), 'fp32'));
    return { graph: g };
  },
  B() {
    const g = new Graph();
    const x = g.input('x', [64, 32]);
    const w = g.param('W', [96, 64]); // trainable: packed next to x, staged transposed
    g.output('mm_y', linear(x, w));
    return { graph: g };
  },
  C(weights) {
    const g = new Graph();
    // The bound proves the sum of squares fits fp16 (128 * 16^2 = 32768), so the norm may run on the ANE.
    const x = g.input('x', [128, 64], { maxAbs: 16 });
    const gain = g.param('rms_w', [128], { trainable: false, data: fp16Blob(weights, 'rms_w.bin', 128) });
    g.output('out', rmsNorm(x, gain, { eps: 1e-5 }));
    return { graph: g };
  },
  D() {
    const g = new Graph();
    const q = g.input('q', [128, 64]);
    const k = g.input('k', [128, 64]);
    const qh = splitHeads(q, 4);
    const kh = splitHeads(k, 4);
    const scores = matmul(qh, transpose(kh, [0, 2, 1]));
    const masked = add(mul(scores, 1 / Math.sqrt(32)), causalMask(g, 64, { name: 'mask' }));
    g.output('out', reshape(softmax(masked, -1), [256, 64]));
    return { graph: g };
  },
  E(weights) {
    const g = new Graph();
    const x = g.input('x', [1, 64, 16, 16]);
    const q0 = g.constant(int8Blob(weights, 'weight.bin', 64 * 64), [64, 64, 1, 1], {
      dtype: 'int8',
      name: 'W0',
      blobFile: 'weight.bin',
    });
    const q1 = g.constant(int8Blob(weights, 'weight.bin', 64 * 64, 4224), [64, 64, 1, 1], {
      dtype: 'int8',
      name: 'W1',
      blobFile: 'weight.bin',
    });
    const c0 = conv2d(x, dequantize(q0, 0.125));
    const dq0 = dequantize(quantize(c0, 0.125), 0.125);
    g.output('c1', conv2d(dq0, dequantize(q1, 0.125)));
    return { graph: g };
  },
  E2(weights) {
    const g = new Graph();
    const x = g.input('x', [32, 64]);
    const q0 = g.constant(int8Blob(weights, 'weight.bin', 32 * 32), [32, 32], {
      dtype: 'int8',
      name: 'W0',
      blobFile: 'weight.bin',
    });
    const identity = linear(x, dequantize(q0, 0.125)); // a 1x1 conv with an int8 weight
    g.output('dq0', dequantize(quantize(identity, 0.125), 0.125));
    return { graph: g };
  },
  F(weights) {
    const g = new Graph();
    const x = g.input('x', [64, 32]);
    const frozen = (name: string, shape: [number, number], offset: number) =>
      g.param(name, shape, {
        trainable: false,
        data: fp16Blob(weights, 'ffn.bin', shape[0] * shape[1], offset),
        blobFile: 'ffn.bin',
      });
    const w1 = frozen('W1', [128, 64], 64);
    const w3 = frozen('W3', [128, 64], 16512);
    const w2 = frozen('W2', [64, 128], 32960);
    const { y, h1, h3 } = swigluParts(x, w1, w3, w2);
    g.output('y', y);
    g.output('h1', h1);
    g.output('h3', h3);
    return { graph: g };
  },
  G() {
    const g = new Graph();
    const x = g.input('x', [128, 64]);
    const tables = ropeTables(g, 64, 32, { convention: 'interleaved' });
    g.output('out', mergeHeads(rope(splitHeads(x, 4), tables)));
    return { graph: g };
  },
  H() {
    const g = new Graph();
    const p = g.input('p', [256, 64]);
    const dp = g.input('dp', [256, 64]);
    const probs = reshape(p, [4, 64, 64]);
    const dprobs = reshape(dp, [4, 64, 64]);
    const rowSum = reduceSum(mul(probs, dprobs), -1, { keepDims: true });
    g.output('out', reshape(mul(probs, sub(dprobs, rowSum)), [256, 64]));
    return { graph: g };
  },
  I(weights) {
    const g = new Graph();
    const x = g.input('x', [64, 32]);
    const we = g.param('We', [512, 64], {
      trainable: false,
      data: fp16Blob(weights, 'embed.bin', 512 * 64),
      blobFile: 'embed.bin',
    });
    g.output('out', softmax(linear(x, we), 0));
    return { graph: g };
  },
  J() {
    const g = new Graph();
    const x = g.input('x', [64, 32]);
    // A separate port holds its value as the graph declares it; the case passes Wᵀ ([IC, OC], row i =
    // W[i, :]), so the graph declares the weight that way and multiplies by its transpose.
    const wT = g.param('w', [64, 96]);
    g.output('mm_y', matmul(wT, x, { transposeX: true }));
    return { graph: g, options: { io: 'separate' } };
  },
};

const cases = findCaseDirs([CORPUS]).map((dir) => loadCase(dir));
const summary: string[] = [];

describe('the conformance corpus through the IR', () => {
  it('has a builder for every case', () => {
    expect(cases.map((c) => c.id).sort()).toEqual(Object.keys(BUILDERS).sort());
  });

  for (const testCase of cases) {
    it(`case ${testCase.id}: the printed program reproduces the expected outputs`, () => {
      const { graph, options } = BUILDERS[testCase.id]!(testCase.program.weights);
      const kernel: LoweredKernel = lowerGraph(graph, options);
      const { program } = kernel;
      expect(program.inputs.map((s) => [s.dtype, s.shape])).toEqual(
        testCase.program.inputs.map((s) => [s.dtype, s.shape]),
      );
      expect(program.outputs.map((s) => [s.dtype, s.shape])).toEqual(
        testCase.program.outputs.map((s) => [s.dtype, s.shape]),
      );
      for (const [key, bytes] of testCase.program.weights) {
        const emitted = program.weights.get(key);
        if (emitted !== undefined) {
          expect(Buffer.from(emitted).equals(Buffer.from(bytes)), `${key} byte for byte`).toBe(true);
        }
      }
      const outputs = runOnSim(program, testCase.inputs);
      let worst = 0;
      outputs.forEach((got, i) => {
        const spec = testCase.program.outputs[i]!;
        const expected = decode(testCase.expected[i]!, spec.dtype);
        const comparison = compareOutput(got, expected, spec.shape, testCase.tolerance);
        worst = Math.max(worst, comparison.worst?.ratio ?? 0);
        expect(comparison.pass, `${spec.name}: worst ${JSON.stringify(comparison.worst)}`).toBe(true);
      });
      summary.push(
        `${testCase.id}: worst error ${(worst * 100).toFixed(1)}% of tolerance, blobs ${[...program.weights.keys()].map((k) => k.split('/').pop()).join(', ') || 'none'}`,
      );
    });
  }

  for (const testCase of cases) {
    it(`case ${testCase.id}: partitioned and run through device.load, the same outputs`, () => {
      const { graph, options } = BUILDERS[testCase.id]!(testCase.program.weights);
      const kernel = lowerGraph(graph, options);
      // The case's packed inputs, split into the values the graph names (the inverse of packing).
      const feeds: Record<string, Float32Array> = {};
      kernel.inputs.forEach((port, i) => {
        for (const [source, values] of unpackOutput(port, decode(testCase.inputs[i]!, port.spec.dtype)))
          feeds[source] = values;
      });
      const plan = partition(graph, options);
      const outputs = executePlan(plan, feeds);
      let worst = 0;
      kernel.outputs.forEach((port, i) => {
        const expected = unpackOutput(port, decode(testCase.expected[i]!, port.spec.dtype));
        for (const [name, values] of expected) {
          const comparison = compareOutput(outputs.get(name)!, values, [values.length], testCase.tolerance);
          worst = Math.max(worst, comparison.worst?.ratio ?? 0);
          expect(comparison.pass, `${name}: worst ${JSON.stringify(comparison.worst)}`).toBe(true);
        }
      });
      summary.push(
        `${testCase.id} through device.load: ${plan.kernels.length} kernel(s), ${plan.hostOps.length} host op(s), worst error ${(worst * 100).toFixed(1)}% of tolerance`,
      );
    });
  }

  it('reports', () => {
    console.log(summary.join('\n'));
  });
});
