/**
 * The lowering of every primitive and composite, checked on the simulator: each small graph is
 * lowered to one kernel, run with packed inputs, and compared with the float64 reference.
 */
import {
  add,
  avgPool,
  concat,
  conv2d,
  convTranspose2d,
  div,
  equal,
  evaluate,
  exp,
  Graph,
  gelu,
  greater,
  layerNorm,
  less,
  linear,
  log,
  lowerGraph,
  matmul,
  maximum,
  maxPool,
  mean,
  minimum,
  mul,
  packInput,
  partition,
  pow,
  reduceMax,
  reduceSum,
  relu,
  reshape,
  rmsNorm,
  select,
  sigmoid,
  silu,
  slice,
  softmax,
  sqrt,
  sub,
  type Tensor,
  tanh,
  transpose,
  unpackOutput,
} from 'ane-ir';
import { describe, expect, it } from 'vitest';
import { executePlan, normals, runOnSim, worstRatio } from './support';

interface Built {
  graph: Graph;
  feeds: Record<string, Float32Array>;
  /** Values of several shapes need one parameter each. */
  separate?: boolean;
}

/** Lowers the graph, runs it on the simulator and returns the worst error ratio over all outputs. */
function check({ graph, feeds, separate }: Built, atol = 2e-2, rtol = 2e-2): number {
  const kernel = lowerGraph(graph, separate ? { io: 'separate' } : {});
  const inputs = kernel.inputs.map((port) => packInput(port, (source) => feeds[source]!));
  const outputs = runOnSim(kernel.program, inputs);
  const got = new Map<string, Float32Array>();
  kernel.outputs.forEach((port, i) => {
    for (const [source, value] of unpackOutput(port, outputs[i]!)) got.set(source, value);
  });
  const tensors = graph.outputs.map((o) => o.tensor);
  const expected = evaluate(tensors, feeds);
  let worst = 0;
  graph.outputs.forEach((output, i) => {
    worst = Math.max(worst, worstRatio(got.get(output.name)!, expected[i]!, atol, rtol));
  });
  return worst;
}

function graphWith<K extends string>(
  shapes: Record<K, number[]>,
  build: (inputs: Record<K, Tensor>, g: Graph) => Tensor[],
  maxAbs?: number,
  separate = false,
): Built {
  const graph = new Graph();
  const inputs = {} as Record<K, Tensor>;
  const feeds: Record<string, Float32Array> = {};
  let seed = 11;
  for (const name of Object.keys(shapes) as K[]) {
    const shape = shapes[name];
    inputs[name] = graph.input(name, shape, maxAbs === undefined ? {} : { maxAbs });
    feeds[name] = normals(
      shape.reduce((a, b) => a * b, 1),
      1,
      seed++,
    );
  }
  build(inputs, graph).forEach((t, i) => {
    graph.output(`out${i}`, t);
  });
  return { graph, feeds, separate };
}

const CASES: [string, () => Built][] = [
  [
    'unary ops',
    () =>
      graphWith({ x: [32, 32] }, ({ x }) => [
        exp(mul(x, 0.5)),
        tanh(x),
        relu(x),
        silu(x),
        sqrt(add(mul(x, x), 1)),
      ]),
  ],
  [
    'binary ops with broadcasting ([C, S] with [C, 1], [S] and scalars)',
    () =>
      graphWith(
        { x: [32, 64], g: [32, 1], r: [64] },
        ({ x, g, r }) => [
          add(x, g),
          mul(x, r),
          sub(1, x),
          div(x, 4),
          maximum(x, g),
          minimum(x, 0),
          pow(add(mul(x, x), 1), -0.5),
        ],
        undefined,
        true,
      ),
  ],
  [
    'reductions over channels and positions, kept or not',
    () =>
      graphWith(
        { x: [32, 64] },
        ({ x }) => [
          reduceSum(x, 0, { keepDims: true }),
          reduceMax(x, 1, { keepDims: true }),
          reshape(reduceSum(x, 1), [32, 1]),
          mean(x, 1, { keepDims: true }),
        ],
        8,
        true,
      ),
  ],
  [
    'movement: 2-D and 3-D transposes, slices on either axis, concats, reshapes',
    () =>
      graphWith({ x: [32, 64], y: [32, 64] }, ({ x, y }) => [
        reshape(transpose(reshape(x, [4, 8, 64]), [0, 2, 1]), [32, 64]),
        concat([slice(x, [0, 32], [32, 32]), slice(y, [0, 0], [32, 32])], 1),
        concat([slice(x, [16, 0], [16, 64]), slice(y, [0, 0], [16, 64])], 0),
        transpose(matmul(transpose(x), y)),
      ]),
  ],
  [
    'softmax over channels and positions, on 2-D and 3-D tensors',
    () =>
      graphWith({ x: [32, 64] }, ({ x }) => [
        softmax(x, 0),
        softmax(x, 1),
        reshape(softmax(reshape(x, [4, 8, 64]), 1), [32, 64]),
      ]),
  ],
  [
    'LayerNorm and GELU on the ANE (the input bound proves the sums fit)',
    () => {
      const built = graphWith(
        { x: [32, 64] },
        ({ x }, g) => {
          const gain = g.constant(
            normals(32, 0.1, 7).map((v) => v + 1),
            [32],
          );
          const bias = g.constant(normals(32, 0.1, 8), [32]);
          return [layerNorm(x, gain, bias), gelu(x), gelu(x, { approximation: 'sigmoid' })];
        },
        8,
      );
      return built;
    },
  ],
  [
    'pools and convolutions (3x3 with padding, grouped, transposed)',
    () =>
      graphWith(
        { x: [1, 8, 8, 32], s: [16, 64] },
        ({ x, s }, g) => {
          const w = g.constant(normals(8 * 8 * 9, 0.2, 9), [8, 8, 3, 3]);
          const grouped = g.constant(normals(8 * 2 * 1 * 1, 0.5, 10), [8, 2, 1, 1]);
          const up = g.param('up', [8, 4, 2, 2], { trainable: false, data: normals(8 * 4 * 4, 0.3, 12) });
          return [
            conv2d(x, w, { pad: [1, 1, 1, 1] }),
            conv2d(x, grouped, { groups: 4 }),
            convTranspose2d(x, up),
            avgPool(s, { kernel: 2 }),
            maxPool(s, { kernel: 4 }),
          ];
        },
        undefined,
        true,
      ),
  ],
  [
    'linear layers: frozen (1x1 conv) and trainable (packed), with a bias',
    () => {
      const graph = new Graph();
      const x = graph.input('x', [32, 64]);
      const frozen = graph.param('wf', [48, 32], { trainable: false, data: normals(48 * 32, 0.2, 3) });
      const w = graph.param('w', [48, 32]);
      const bias = graph.param('b', [48], { trainable: false, data: normals(48, 0.1, 4) });
      graph.output('a', linear(x, frozen, { bias }));
      graph.output('b', linear(x, w));
      return { graph, feeds: { x: normals(32 * 64, 1, 1), w: normals(48 * 32, 0.2, 2) } };
    },
  ],
  [
    'comparisons feeding select (bool only inside the kernel), maximum, minimum, relu and log',
    () =>
      graphWith({ x: [32, 64], g: [32, 1] }, ({ x, g }) => [
        select(greater(x, g), x, g),
        select(less(x, 0), 0, x),
        select(equal(relu(x), 0), 1, 0),
        maximum(minimum(x, 0.5), -0.5),
        log(add(mul(x, x), 1)),
        log(sigmoid(x), { epsilon: 1e-4 }),
      ]),
  ],
  [
    'comparisons and selects across layouts: a matmul result (mm view) and 3-D tensors',
    () =>
      graphWith({ x: [32, 64], y: [32, 64] }, ({ x, y }) => {
        const scores = matmul(transpose(x), y); // [64, 64], computed in the matmul layout
        const heads = reshape(x, [4, 8, 64]);
        const masked = select(greater(heads, reshape(y, [4, 8, 64])), heads, -1e4);
        return [
          reshape(select(less(scores, 0), 0, scores), [32, 128]),
          reshape(softmax(masked, 2), [32, 64]),
          select(equal(x, y), y, add(x, 1)),
          // reduceMax's VJP mask: where x equals its column maximum (cond [32, 64] from x vs [1, 64]).
          select(equal(x, reduceMax(x, 0, { keepDims: true })), 1, 0),
          // a condition of lower rank than the values it selects between ([64] against [32, 64]).
          select(greater(reduceSum(y, 0), 0), x, y),
        ];
      }),
  ],
];

describe('primitives and composites on the simulator', () => {
  for (const [label, build] of CASES) {
    it(label, () => {
      const worst = check(build());
      expect(worst).toBeLessThanOrEqual(1);
    });
  }
});

describe('a ReLU MLP step with select masks, partitioned and run on the simulator', () => {
  it('keeps every comparison and select on the ANE and matches the float64 reference', () => {
    // Two layers, y = W2 relu(W1 x); backward by hand: dh = select(h > 0, W2ᵀ dy, 0), dx = W1ᵀ dh.
    const graph = new Graph();
    const x = graph.input('x', [32, 64], { maxAbs: 4 });
    const dy = graph.input('dy', [32, 64], { maxAbs: 4 });
    const w1 = graph.param('w1', [32, 32]);
    const w2 = graph.param('w2', [32, 32]);
    const h = matmul(w1, x);
    const mask = greater(h, 0, { name: 'mask' });
    const y = matmul(w2, select(mask, h, 0, { name: 'relu_h' }));
    const dh = select(mask, matmul(w2, dy, { transposeX: true }), 0, { name: 'dh' });
    graph.output('y', y);
    graph.output('dx', matmul(w1, dh, { transposeX: true }));
    const plan = partition(graph);
    for (const node of ['mask', 'relu_h', 'dh']) {
      expect(plan.placements.find((p) => p.node === node)?.device).toBe('ane');
    }
    expect(plan.hostOps).toEqual([]);
    const feeds = {
      x: normals(32 * 64, 1, 21),
      dy: normals(32 * 64, 1, 22),
      w1: normals(32 * 32, 0.2, 23),
      w2: normals(32 * 32, 0.2, 24),
    };
    const values = executePlan(plan, feeds);
    const [yRef, dxRef] = evaluate([y, graph.outputs[1]!.tensor], feeds);
    expect(worstRatio(values.get('y')!, yRef!, 2e-2, 2e-2)).toBeLessThanOrEqual(1);
    expect(worstRatio(values.get('dx')!, dxRef!, 2e-2, 2e-2)).toBeLessThanOrEqual(1);
  });
});

describe('a ReLU mask shared by forward and backward across a host op', () => {
  it('is recomputed in both kernels (bool never crosses a kernel) and the plan matches the reference', () => {
    const graph = new Graph();
    const x = graph.input('x', [32, 64]);
    const w1 = graph.param('w1', [32, 32]);
    const w2 = graph.param('w2', [32, 32]);
    const gain = graph.param('gain', [32], { trainable: false, data: normals(32, 0.1, 5).map((v) => v + 1) });
    const h = matmul(w1, x);
    const mask = greater(h, 0, { name: 'mask' });
    const normed = rmsNorm(select(mask, h, 0, { name: 'relu' }), gain, { name: 'norm' });
    const y = graph.output('y', matmul(w2, normed));
    const dh = select(mask, matmul(w2, y, { transposeX: true }), 0, { name: 'dh' });
    const dx = graph.output('dx', matmul(w1, dh, { transposeX: true }));
    const plan = partition(graph);
    expect(plan.hostOps.map((op) => op.kind)).toEqual(['rmsnorm']);
    expect(plan.kernels.filter((k) => k.nodes.includes(mask)).length).toBe(2);
    const feeds = {
      x: normals(32 * 64, 1, 31),
      w1: normals(32 * 32, 0.2, 32),
      w2: normals(32 * 32, 0.2, 33),
    };
    const values = executePlan(plan, feeds);
    const [yRef, dxRef] = evaluate([y, dx], feeds);
    expect(worstRatio(values.get('y')!, yRef!, 2e-2, 2e-2)).toBeLessThanOrEqual(1);
    expect(worstRatio(values.get('dx')!, dxRef!, 2e-2, 2e-2)).toBeLessThanOrEqual(1);
  });
});
