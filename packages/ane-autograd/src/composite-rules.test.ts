import {
  add,
  evaluate,
  Graph,
  headRmsNorm,
  linear,
  mul,
  reduceSum,
  rmsNorm,
  rope,
  ropeTables,
  softmaxCrossEntropy,
  type Tensor,
} from 'ane-ir';
import { describe, expect, it } from 'vitest';
import { gradients } from './backward';
import { HEAD_RMSNORM_GRAD, RMSNORM_GRAD, SOFTMAX_CROSS_ENTROPY_GRAD } from './composite-rules';
import { gradcheck } from './gradcheck';
import { feedsFor, weightedSum } from './testing/check';
import { referenceGradients } from './testing/reference';

function usesCall(nodes: readonly Tensor[], kind: string): boolean {
  return nodes.some((n) => n.composites.some((t) => t.kind === kind));
}

function rmsnormGraph() {
  const graph = new Graph();
  const x = graph.input('x', [6, 5], { dtype: 'fp32' });
  const gain = graph.param('gain', [6], { dtype: 'fp32' });
  const y = rmsNorm(x, gain, { eps: 1e-3, name: 'norm' });
  return { graph, x, gain, y };
}

describe('the per-head RMSNorm (Qwen3 q/k norm) composite rule', () => {
  it('equals the primitive-level derivation, the reference autograd and finite differences', () => {
    const graph = new Graph();
    const [H, HD, S] = [3, 4, 5];
    const x = graph.input('x', [H * HD, S], { dtype: 'fp32' });
    const gain = graph.param('gain', [HD], { dtype: 'fp32' });
    const y = headRmsNorm(x, gain, H, { eps: 1e-3, name: 'q_norm' });
    // x read twice (a residual around the call): fan-out next to a composite rule.
    const loss = weightedSum(add(y, mul(x, 0.5)));
    const feeds = feedsFor([x, gain], 41);
    const before = graph.nodes.length;
    const composite = gradients(loss, [x, gain]);
    expect(usesCall(graph.nodes.slice(before), HEAD_RMSNORM_GRAD)).toBe(true);
    const middle = graph.nodes.length;
    const primitive = gradients(loss, [x, gain], { compositeRules: false });
    expect(usesCall(graph.nodes.slice(middle), HEAD_RMSNORM_GRAD)).toBe(false);

    const [cx, cg] = evaluate(composite, feeds);
    const [px, pg] = evaluate(primitive, feeds);
    const reference = referenceGradients(loss, [x, gain], feeds);
    const triples: [Float64Array, Float64Array, Float64Array][] = [
      [cx!, px!, reference.grads[0]!],
      [cg!, pg!, reference.grads[1]!],
    ];
    triples.forEach(([c, p, r]) => {
      c.forEach((v, i) => {
        expect(v).toBeCloseTo(p[i]!, 12);
        expect(v).toBeCloseTo(r[i]!, 12);
      });
    });
    for (const check of gradcheck({ loss, wrt: [x, gain], feeds })) {
      expect(check.maxRelError, check.name).toBeLessThan(1e-6);
    }
  });
});

describe('the RoPE composite rule', () => {
  for (const convention of ['interleaved', 'rotate-half'] as const) {
    it(`equals the primitive-level derivation, the reference autograd and finite differences (${convention})`, () => {
      const graph = new Graph();
      const [H, S, HD] = [2, 3, 6];
      const x = graph.input('x', [H, S, HD], { dtype: 'fp16' });
      const tables = ropeTables(graph, S, HD, { convention, offset: 5 });
      // x read twice (a residual around the call), and two calls sharing the tables, as q and k do.
      const loss = weightedSum(add(mul(rope(x, tables), rope(mul(x, 0.5), tables)), x));
      const feeds = feedsFor([x], 47);
      const before = graph.nodes.length;
      const [composite] = gradients(loss, [x]);
      const ruleNodes = graph.nodes.slice(before);
      const middle = graph.nodes.length;
      const [primitive] = gradients(loss, [x], { compositeRules: false });
      // The rule swaps dy once per call; the primitives sum zero-padded windows one add at a time.
      const padded = (nodes: readonly Tensor[]) =>
        nodes.filter((n) => n.localName.startsWith('dx_pad')).length;
      expect(ruleNodes.filter((n) => n.localName.startsWith('dy_swap')).length).toBe(2);
      expect(padded(ruleNodes)).toBe(0);
      expect(padded(graph.nodes.slice(middle))).toBeGreaterThan(0);
      const [c] = evaluate([composite!], feeds);
      const [p] = evaluate([primitive!], feeds);
      const reference = referenceGradients(loss, [x], feeds).grads[0]!;
      c!.forEach((v, i) => {
        expect(v).toBeCloseTo(p![i]!, 12);
        expect(v).toBeCloseTo(reference[i]!, 12);
      });
      for (const check of gradcheck({ loss, wrt: [x], feeds })) {
        expect(check.maxRelError, check.name).toBeLessThan(1e-6);
      }
    });
  }

  it('by hand: dx = dy ⊙ cos + swap(dy) ⊙ swap(signed sin), rotate-half, one position', () => {
    const graph = new Graph();
    const x = graph.input('x', [1, 1, 4], { dtype: 'fp32' });
    const cos = graph.constant([0.5, 0.25, 0.5, 0.25], [1, 4], { dtype: 'fp32' });
    const sin = graph.constant([0.75, 0.125, 0.75, 0.125], [1, 4], { dtype: 'fp32' });
    // loss = Σ w ⊙ rope(x): dy = w.
    const w = graph.constant([1, 2, 3, 4], [1, 1, 4], { dtype: 'fp32' });
    const loss = reduceSum(mul(rope(x, { cos, sin, convention: 'rotate-half' }), w), [0, 1, 2], {
      keepDims: true,
    });
    const [dx] = evaluate(gradients(loss, [x]), feedsFor([x], 48));
    // y = [x0 c0 − x2 s0, x1 c1 − x3 s1, x2 c2 + x0 s2, x3 c3 + x1 s3]
    // dx0 = w0 c0 + w2 s2, dx1 = w1 c1 + w3 s3, dx2 = w2 c2 − w0 s0, dx3 = w3 c3 − w1 s1
    expect([...dx!]).toEqual([
      1 * 0.5 + 3 * 0.75,
      2 * 0.25 + 4 * 0.125,
      3 * 0.5 - 1 * 0.75,
      4 * 0.25 - 2 * 0.125,
    ]);
  });
});

describe('the RMSNorm composite rule', () => {
  it('equals the primitive-level derivation, the reference autograd and finite differences', () => {
    const { graph, x, gain, y } = rmsnormGraph();
    // x read twice: through the norm and by a residual add (fan-out around a composite rule).
    const loss = weightedSum(add(y, mul(x, 0.5)));
    const feeds = feedsFor([x, gain], 31);
    const before = graph.nodes.length;
    const composite = gradients(loss, [x, gain]);
    expect(usesCall(graph.nodes.slice(before), RMSNORM_GRAD)).toBe(true);
    const middle = graph.nodes.length;
    const primitive = gradients(loss, [x, gain], { compositeRules: false });
    expect(usesCall(graph.nodes.slice(middle), RMSNORM_GRAD)).toBe(false);
    // Fewer ops than the primitive derivation.
    expect(middle - before).toBeLessThan(graph.nodes.length - middle);

    const [cx, cg] = evaluate(composite, feeds);
    const [px, pg] = evaluate(primitive, feeds);
    const reference = referenceGradients(loss, [x, gain], feeds);
    const triples: [Float64Array, Float64Array, Float64Array][] = [
      [cx!, px!, reference.grads[0]!],
      [cg!, pg!, reference.grads[1]!],
    ];
    triples.forEach(([c, p, r]) => {
      c.forEach((v, i) => {
        expect(v).toBeCloseTo(p[i]!, 12);
        expect(v).toBeCloseTo(r[i]!, 12);
      });
    });
    for (const check of gradcheck({ loss, wrt: [x, gain], feeds })) {
      expect(check.maxRelError, check.name).toBeLessThan(1e-6);
    }
  });

  it('steps aside when a value inside the call is read outside it', () => {
    const { graph, x, gain, y } = rmsnormGraph();
    const inner = graph.node('norm.xr');
    const loss = weightedSum(add(y, mul(inner, inner)));
    const before = graph.nodes.length;
    const derived = gradients(loss, [x, gain]);
    expect(usesCall(graph.nodes.slice(before), RMSNORM_GRAD)).toBe(false);
    const feeds = feedsFor([x, gain], 32);
    const reference = referenceGradients(loss, [x, gain], feeds);
    evaluate(derived, feeds).forEach((values, k) => {
      values.forEach((v, i) => {
        expect(v).toBeCloseTo(reference.grads[k]![i]!, 12);
      });
    });
  });
});

describe('the softmax cross-entropy composite rule', () => {
  function crossEntropyGraph(ignoreIndex?: number) {
    const graph = new Graph();
    const x = graph.input('x', [3, 4], { dtype: 'fp32' });
    const w = graph.param('w', [5, 3], { dtype: 'fp32' });
    const targets = graph.input('targets', [4], { dtype: 'int32' });
    const logits = linear(x, w, { name: 'head' });
    const xent = softmaxCrossEntropy(logits, targets, {
      ...(ignoreIndex !== undefined ? { ignoreIndex } : {}),
      name: 'xent',
    });
    // A scaled loss: the scale reaches the rule as dloss.
    const loss = mul(xent, 3, { name: 'scaled' });
    return { graph, x, w, targets, logits, loss };
  }

  const cases: [string, number | undefined, number[]][] = [
    ['every position counted', undefined, [4, 0, 2, 2]],
    ['a negative ignore index', -100, [4, -100, 2, -100]],
    ['an ignore index that is a class', 2, [4, 0, 2, 1]],
  ];
  for (const [label, ignoreIndex, targetValues] of cases) {
    it(`equals (softmax − onehot)/N · dloss, the primitive derivation, the reference and finite differences (${label})`, () => {
      const { graph, x, w, targets, logits, loss } = crossEntropyGraph(ignoreIndex);
      const feeds = feedsFor([x, w], 41);
      feeds.set(targets, Float64Array.from(targetValues));
      const before = graph.nodes.length;
      const [dlogits] = gradients(loss, [logits]);
      const added = graph.nodes.slice(before);
      expect(usesCall(added, SOFTMAX_CROSS_ENTROPY_GRAD)).toBe(true);
      const call = dlogits!.composites.find((t) => t.kind === SOFTMAX_CROSS_ENTROPY_GRAD)!;
      expect(call.result).toBe(dlogits);
      expect(call.args).toMatchObject({
        logits,
        targets,
        ...(ignoreIndex !== undefined ? { ignoreIndex } : {}),
      });

      // By hand, in float64: softmax over each column, minus the one-hot, over N, times 3.
      const [z] = evaluate([logits], feeds);
      const kept = targetValues.map((t): number => (ignoreIndex !== undefined && t === ignoreIndex ? 0 : 1));
      const count = kept.reduce((a, b) => a + b, 0);
      const expected = new Float64Array(20);
      for (let s = 0; s < 4; s++) {
        const column = [0, 1, 2, 3, 4].map((v) => z![v * 4 + s]!);
        const max = Math.max(...column);
        const total = column.reduce((a, v) => a + Math.exp(v - max), 0);
        for (let v = 0; v < 5; v++) {
          const p = Math.exp(column[v]! - max) / total;
          expected[v * 4 + s] = (kept[s]! * (p - (targetValues[s] === v ? 1 : 0)) * 3) / count;
        }
      }
      const [analytic] = evaluate([dlogits!], feeds);
      analytic!.forEach((v, i) => {
        expect(v).toBeCloseTo(expected[i]!, 12);
      });

      const composite = gradients(loss, [x, w]);
      const middle = graph.nodes.length;
      const primitive = gradients(loss, [x, w], { compositeRules: false });
      expect(usesCall(graph.nodes.slice(middle), SOFTMAX_CROSS_ENTROPY_GRAD)).toBe(false);
      const reference = referenceGradients(loss, [x, w], feeds);
      const c = evaluate(composite, feeds);
      const p = evaluate(primitive, feeds);
      c.forEach((values, k) => {
        values.forEach((v, i) => {
          expect(v).toBeCloseTo(p[k]![i]!, 12);
          expect(v).toBeCloseTo(reference.grads[k]![i]!, 12);
        });
      });
      for (const check of gradcheck({ loss, wrt: [x, w], feeds })) {
        expect(check.maxRelError, check.name).toBeLessThan(1e-6);
      }
    });
  }

  it('a rule that forgot the 1/N would be caught: N is the counted positions, not S', () => {
    const { graph, x, w, targets, logits, loss } = crossEntropyGraph(-1);
    const feeds = feedsFor([x, w], 42);
    feeds.set(targets, Float64Array.from([1, -1, -1, 3]));
    const [dlogits] = gradients(loss, [logits]);
    const [analytic] = evaluate([dlogits!], feeds);
    // Ignored columns get nothing; a counted column sums to 0 (softmax and one-hot both sum to 1)
    // and its target entry is (p − 1)·3/2.
    const [z] = evaluate([logits], feeds);
    for (let s = 0; s < 4; s++) {
      const column = [0, 1, 2, 3, 4].map((v) => analytic![v * 4 + s]!);
      if (s === 1 || s === 2) expect(column.every((v) => v === 0)).toBe(true);
      else expect(column.reduce((a, b) => a + b, 0)).toBeCloseTo(0, 12);
    }
    const column0 = [0, 1, 2, 3, 4].map((v) => z![v * 4]!);
    const total = column0.reduce((a, v) => a + Math.exp(v), 0);
    expect(analytic![1 * 4]).toBeCloseTo(((Math.exp(column0[1]!) / total - 1) * 3) / 2, 12);
    expect(graph.nodes.length).toBeGreaterThan(0);
  });
});
