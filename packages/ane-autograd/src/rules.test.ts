import {
  add,
  BINARY_FNS,
  COMPARE_FNS,
  cast,
  concat,
  conv2d,
  div,
  evaluate,
  exp,
  Graph,
  gather,
  greater,
  log,
  matmul,
  maximum,
  minimum,
  mul,
  pow,
  REDUCE_FNS,
  reduceMax,
  reduceSum,
  relu,
  reshape,
  select,
  sigmoid,
  slice,
  softmax,
  sqrt,
  sub,
  type Tensor,
  tanh,
  transpose,
  UNARY_FNS,
} from 'ane-ir';
import { describe, expect, it } from 'vitest';
import { gradients } from './backward';
import { UnsupportedError } from './errors';
import { gradcheck } from './gradcheck';
import { broadcastTo, ruleKey, unbroadcast, VJP_RULES, vjpRule } from './rules';
import { expectGradientsMatch, feedsFor, weightedSum } from './testing/check';

/** A float32 graph with inputs of the given shapes (float32 keeps constants near-exact). */
function inputs(...shapes: number[][]): { graph: Graph; xs: Tensor[] } {
  const graph = new Graph();
  const xs = shapes.map((shape, i) => graph.input(`x${i}`, shape, { dtype: 'fp32' }));
  return { graph, xs };
}

/** Checks `d weightedSum(build(xs)) / d xs`. */
function checkOp(
  shapes: number[][],
  build: (...xs: Tensor[]) => Tensor,
  options: { low?: number; high?: number; seed?: number } = {},
): void {
  const { xs } = inputs(...shapes);
  const loss = weightedSum(build(...xs));
  expectGradientsMatch({ loss, wrt: xs, feeds: feedsFor(xs, options.seed ?? 1, options.low, options.high) });
}

describe('the VJP table', () => {
  it('has a rule for every unary, binary and reduce function and every non-source op kind', () => {
    const keys = [
      ...UNARY_FNS.map((fn) => `unary.${fn}`),
      ...BINARY_FNS.map((fn) => `binary.${fn}`),
      ...REDUCE_FNS.map((fn) => `reduce.${fn}`),
      'reshape',
      'transpose',
      'slice',
      'concat',
      'matmul',
      'conv',
      'softmax',
      'cast',
      'gather',
      ...COMPARE_FNS.map((fn) => `compare.${fn}`),
      'select',
    ];
    for (const key of keys) expect(VJP_RULES, key).toHaveProperty([key]);
  });

  it('names the op when it has no rule', () => {
    const { graph, xs } = inputs([2]);
    const odd = graph.add({ kind: 'mystery' } as never, [xs[0]!], {}, { shape: [2], dtype: 'fp32' });
    expect(() => vjpRule(odd)).toThrow(UnsupportedError);
    expect(() => vjpRule(odd)).toThrow(/'mystery' has no entry in ane-autograd's VJP table/);
    expect(ruleKey(odd.op)).toBe('mystery');
  });
});

describe('unbroadcast', () => {
  it('sums over broadcast axes back to the operand shape (hand-computed)', () => {
    const { xs } = inputs([2, 3]);
    const g = unbroadcast(xs[0]!, [3]);
    const h = unbroadcast(xs[0]!, [2, 1]);
    expect(g.shape).toEqual([3]);
    expect(h.shape).toEqual([2, 1]);
    const feeds = new Map([[xs[0]!, [1, 2, 3, 4, 5, 6]]]);
    const [gv, hv] = evaluate([g, h], feeds);
    expect(Array.from(gv!)).toEqual([5, 7, 9]);
    expect(Array.from(hv!)).toEqual([6, 15]);
  });
});

describe('broadcastTo', () => {
  it('expands one axis at a time with small ones constants (values hand-checked)', () => {
    const { graph, xs } = inputs([1, 1]);
    const before = graph.nodes.length;
    const wide = broadcastTo(xs[0]!, [50, 40]);
    const constants = graph.nodes.slice(before).filter((n) => n.op.kind === 'constant');
    expect(constants.map((c) => c.size).sort((a, b) => a - b)).toEqual([40, 50]);
    expect(wide.shape).toEqual([50, 40]);
    const [values] = evaluate([wide], { x0: [2.5] });
    expect(values!.length).toBe(2000);
    expect(values!.every((v) => v === 2.5)).toBe(true);
  });
});

describe('unary rules pass gradcheck', () => {
  it('exp', () => checkOp([[3, 4]], (x) => exp(x)));
  it('sqrt (positive inputs)', () => checkOp([[3, 4]], (x) => sqrt(x), { low: 0.5, high: 2 }));
  it('sigmoid', () => checkOp([[3, 4]], (x) => sigmoid(x)));
  it('tanh', () => checkOp([[2, 3, 2]], (x) => tanh(x)));
});

describe('binary rules pass gradcheck, with broadcast operands reduced back', () => {
  const pairs: [string, number[], number[]][] = [
    ['same shapes', [3, 4], [3, 4]],
    ['a trailing vector', [3, 4], [4]],
    ['a column and a row', [3, 1], [1, 4]],
    ['a rank-3 and a rank-2 with a unit axis', [2, 3, 4], [3, 1]],
  ];
  for (const [what, a, b] of pairs) {
    it(`add, ${what}`, () => checkOp([a, b], (x, y) => add(x, y)));
    it(`sub, ${what}`, () => checkOp([a, b], (x, y) => sub(x, y)));
    it(`mul, ${what}`, () => checkOp([a, b], (x, y) => mul(x, y)));
    it(`div, ${what}`, () => checkOp([a, b], (x, y) => div(x, add(mul(y, y), 0.5))));
  }
  it('mul and div by scalar constants', () => checkOp([[3, 4]], (x) => div(mul(x, 3), 4)));
  it('pow with constant exponents (2, 3, -0.5, 1)', () =>
    checkOp([[3, 4]], (x) => add(add(pow(x, 2), pow(x, 3)), add(pow(x, -0.5), pow(x, 1))), {
      low: 0.5,
      high: 2,
    }));
  it('pow with a tensor exponent (gradient to the base)', () => {
    const { graph, xs } = inputs([3, 4]);
    const exponent = graph.constant([0.5, 1.5, 2, -1], [4], { dtype: 'fp32' });
    const loss = weightedSum(pow(xs[0]!, exponent));
    expectGradientsMatch({ loss, wrt: xs, feeds: feedsFor(xs, 3, 0.5, 2) });
  });
});

describe('reduce, movement, matmul, softmax rules pass gradcheck', () => {
  it('reduce_sum over one axis', () => checkOp([[3, 4]], (x) => mul(reduceSum(x, 0), reduceSum(x, 0))));
  it('reduce_sum keeping dims', () => checkOp([[3, 4]], (x) => mul(reduceSum(x, 1, { keepDims: true }), x)));
  it('reduce_sum over two axes', () => checkOp([[2, 3, 4]], (x) => exp(reduceSum(x, [0, 2]))));
  it('reshape', () => checkOp([[2, 6]], (x) => mul(reshape(x, [3, 4]), reshape(x, [3, 4]))));
  it('transpose (a 3-D permutation)', () =>
    checkOp([[2, 3, 4]], (x) => mul(transpose(x, [2, 0, 1]), exp(transpose(x, [2, 0, 1])))));
  it('slice (a window inside two axes)', () => checkOp([[4, 5]], (x) => exp(slice(x, [1, 2], [2, 2]))));
  it('concat (three operands)', () =>
    checkOp(
      [
        [2, 3],
        [2, 1],
        [2, 2],
      ],
      (a, b, c) => exp(concat([a, b, c], 1)),
    ));
  it('matmul, every transpose flag', () => {
    for (const transposeX of [false, true])
      for (const transposeY of [false, true]) {
        const a = transposeX ? [4, 3] : [3, 4];
        const b = transposeY ? [5, 4] : [4, 5];
        checkOp([a, b], (x, y) => matmul(x, y, { transposeX, transposeY }));
      }
  });
  it('matmul with batch axes, broadcast on either side', () => {
    checkOp(
      [
        [2, 3, 4],
        [4, 5],
      ],
      (x, y) => matmul(x, y),
    );
    checkOp(
      [
        [1, 3, 4],
        [2, 5, 4],
      ],
      (x, y) => matmul(x, y, { transposeY: true }),
    );
    checkOp(
      [
        [2, 4, 3],
        [2, 4, 5],
      ],
      (x, y) => matmul(x, y, { transposeX: true }),
    );
  });
  it('softmax over either axis', () => {
    checkOp([[3, 4]], (x) => softmax(x, -1));
    checkOp([[3, 4]], (x) => softmax(mul(x, 2), 0));
  });
  it('cast fp32 -> fp16 -> fp32 passes dy through (numeric check at fp16 resolution)', () => {
    const { xs } = inputs([3, 4]);
    const loss = weightedSum(cast(cast(xs[0]!, 'fp16'), 'fp32'));
    // dy itself passes through fp16 on the way back; a finite difference through fp16 rounding
    // needs a step well above its resolution.
    expectGradientsMatch(
      { loss, wrt: xs, feeds: feedsFor(xs) },
      { epsilon: 0.05, numeric: 0.02, reference: 1e-3 },
    );
  });
});

describe('fan-out: a value read several times gets the sum of its gradients', () => {
  it('x read by mul(x, x), exp(x), a matmul with itself and a slice', () =>
    checkOp([[3, 3]], (x) =>
      add(
        add(mul(x, x), exp(x)),
        add(matmul(x, x), concat([slice(x, [0, 0], [3, 1]), slice(x, [0, 1], [3, 2])], 1)),
      ),
    ));
  it('a two-layer tanh MLP with a shared weight', () => {
    const graph = new Graph();
    const x = graph.input('x', [4, 5], { dtype: 'fp32' });
    const w = graph.param('w', [4, 4], { dtype: 'fp32' });
    const h = tanh(matmul(w, x));
    const y = matmul(w, h);
    const loss = weightedSum(y);
    expectGradientsMatch({ loss, wrt: [w, x], feeds: feedsFor([w, x], 5) });
  });
});

describe('conv: dX for stride 1', () => {
  it('3x3 kernel with padding, wrt the input', () => {
    const graph = new Graph();
    const x = graph.input('x', [1, 2, 4, 5], { dtype: 'fp32' });
    const random = [0.3, -0.2, 0.5, 0.1, -0.4, 0.25];
    const weights = Array.from({ length: 3 * 2 * 3 * 3 }, (_, i) => random[i % 6]! * (1 + (i % 5) / 7));
    const w = graph.constant(weights, [3, 2, 3, 3], { dtype: 'fp32' });
    const loss = weightedSum(conv2d(x, w, { pad: [1, 0, 2, 1] }));
    expectGradientsMatch({ loss, wrt: [x], feeds: feedsFor([x]) });
  });
  it('a trainable weight, a stride of 2 and padding past the kernel are UnsupportedErrors', () => {
    const graph = new Graph();
    const x = graph.input('x', [1, 2, 5, 5], { dtype: 'fp32' });
    const w = graph.param('w', [3, 2, 3, 3], { dtype: 'fp32' });
    expect(() => gradients(weightedSum(conv2d(x, w)), [w])).toThrow(/conv weight/);
    const frozen = graph.param('wf', [3, 2, 3, 3], { dtype: 'fp32', trainable: false });
    expect(() => gradients(weightedSum(conv2d(x, frozen, { strides: [2, 2] })), [x])).toThrow(
      /strides \[2, 2\].*use stride 1/,
    );
    expect(() => gradients(weightedSum(conv2d(x, frozen, { pad: [3, 3, 0, 0] })), [x])).toThrow(
      /padding \[3, 3, 0, 0\]/,
    );
  });
});

describe('comparison-based rules pass gradcheck (inputs away from ties and kinks)', () => {
  it('relu', () => checkOp([[3, 4]], (x) => relu(x), { seed: 2 }));
  it('maximum and minimum, with broadcasting', () => {
    checkOp([[3, 4], [4]], (x, y) => maximum(x, y), { seed: 3 });
    checkOp(
      [
        [3, 1],
        [1, 4],
      ],
      (x, y) => minimum(x, y),
      { seed: 4 },
    );
    checkOp([[3, 4]], (x) => add(maximum(x, 0.25), minimum(x, -0.25)), { seed: 5 });
  });
  it('reduce_max over one and two axes, with and without keepDims', () => {
    checkOp([[3, 4]], (x) => reduceMax(x, 1), { seed: 6 });
    checkOp([[2, 3, 4]], (x) => mul(reduceMax(x, [0, 2], { keepDims: true }), x), { seed: 7 });
  });
  it('log, with and without epsilon', () => {
    checkOp([[3, 4]], (x) => log(x), { low: 0.5, high: 2 });
    checkOp([[3, 4]], (x) => log(x, { epsilon: 0.25 }), { low: 0.5, high: 2 });
  });
  it('select with a comparison mask, both branches broadcast (the mask has no gradient)', () => {
    const { xs } = inputs([3, 4], [3, 4], [4]);
    const [c, a, b] = xs as [Tensor, Tensor, Tensor];
    const loss = weightedSum(select(greater(c, 0), a, mul(b, b)));
    expectGradientsMatch({ loss, wrt: [a, b], feeds: feedsFor(xs, 8) });
    const [dc] = gradients(loss, [c]);
    expect(Array.from(evaluate([dc!], feedsFor(xs, 8))[0]!).every((v) => v === 0)).toBe(true);
  });
  it('pow with respect to its exponent (positive base)', () => {
    const { xs } = inputs([3, 4], [4]);
    const loss = weightedSum(pow(xs[0]!, xs[1]!));
    const feeds = feedsFor(xs, 9, 0.5, 2);
    expectGradientsMatch({ loss, wrt: xs, feeds });
  });
});

describe('ties split dy evenly (hand-computed, as PyTorch does)', () => {
  it('maximum(a, b) where a == b gives each half; reduce_max shares among equal maxima', () => {
    const graph = new Graph();
    const a = graph.input('a', [3], { dtype: 'fp32' });
    const b = graph.input('b', [3], { dtype: 'fp32' });
    const loss = reduceSum(maximum(a, b), 0, { keepDims: true });
    const [da, db] = gradients(loss, [a, b]);
    const feeds = { a: [1, 2, 3], b: [1, 5, 0] };
    const [dav, dbv] = evaluate([da!, db!], feeds);
    expect(Array.from(dav!)).toEqual([0.5, 0, 1]);
    expect(Array.from(dbv!)).toEqual([0.5, 1, 0]);

    const x = graph.input('x', [2, 3], { dtype: 'fp32' });
    const top = reduceSum(reduceMax(x, 1), 0, { keepDims: true });
    const [dx] = gradients(top, [x]);
    const [dxv] = evaluate([dx!], { x: [1, 3, 3, 4, 2, 0] });
    expect(Array.from(dxv!)).toEqual([0, 0.5, 0.5, 1, 0, 0]);
  });
  it('relu at exactly 0 passes no gradient', () => {
    const { xs } = inputs([4]);
    const [dx] = gradients(reduceSum(relu(xs[0]!), 0, { keepDims: true }), xs);
    expect(Array.from(evaluate([dx!], { x0: [-1, 0, 2, 0.5] })[0]!)).toEqual([0, 0, 1, 1]);
  });
});

describe('gather: the table gradient is a scatter-add (host composite)', () => {
  it('repeated rows sum their gradients (hand-computed and gradcheck)', () => {
    const graph = new Graph();
    const table = graph.param('table', [5, 3], { dtype: 'fp32' });
    const tokens = graph.input('tokens', [4], { dtype: 'int32' });
    const rows = gather(table, tokens);
    const [dTable] = gradients(reduceSum(rows, [0, 1], { keepDims: true }), [table]);
    expect(dTable!.composites.map((t) => t.kind)).toContain('scatter_add');
    const counts = evaluate([dTable!], { tokens: [0, 3, 3, 1], table: new Float64Array(15) })[0]!;
    // Row v receives one dy row per occurrence of v: counts 1, 1, 0, 2, 0 over 3 columns.
    expect(Array.from(counts)).toEqual([1, 1, 1, 1, 1, 1, 0, 0, 0, 2, 2, 2, 0, 0, 0]);

    const x = graph.input('x', [4, 3], { dtype: 'fp32' });
    const loss = weightedSum(mul(gather(table, tokens, 0, { name: 'rows2' }), x));
    const feeds = new Map<Tensor, Float64Array>([
      [x, Float64Array.from({ length: 12 }, (_, i) => i / 10 - 0.5)],
      [table, Float64Array.from({ length: 15 }, (_, i) => (i % 4) - 1.5)],
      [tokens, Float64Array.from([0, 3, 3, 1])],
    ]);
    const [result] = gradcheck({ loss, wrt: [table], feeds });
    expect(result!.maxAbsError).toBeLessThan(1e-8);
    expect(result!.analytic.some((v) => v !== 0)).toBe(true);
  });
  it('a gather along another axis is an UnsupportedError naming the fix', () => {
    const graph = new Graph();
    const table = graph.param('table', [3, 5], { dtype: 'fp32' });
    const tokens = graph.input('tokens', [2], { dtype: 'int32' });
    const loss = weightedSum(gather(table, tokens, 1));
    expect(() => gradients(loss, [table])).toThrow(/gather along axis 1.*Fix: gather rows/);
  });
});

describe('the check catches a wrong rule', () => {
  it('a matmul rule missing a transpose fails against the reference and finite differences', () => {
    const table = VJP_RULES as Record<string, (typeof VJP_RULES)[string]>;
    const right = table.matmul!;
    table.matmul = ({ node, dy }) => {
      const [a, b] = node.inputs as [Tensor, Tensor];
      // dA = dC · B (should be dC · Bᵀ); square shapes so the shapes still fit.
      return [matmul(dy, b), matmul(a, dy, { transposeX: true })];
    };
    try {
      expect(() =>
        checkOp(
          [
            [3, 3],
            [3, 3],
          ],
          (x, y) => matmul(x, y),
        ),
      ).toThrow(/derived vs reference/);
    } finally {
      table.matmul = right;
    }
    checkOp(
      [
        [3, 3],
        [3, 3],
      ],
      (x, y) => matmul(x, y),
    );
  });
});
