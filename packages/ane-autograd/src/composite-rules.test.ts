import { add, evaluate, Graph, mul, rmsNorm, type Tensor } from 'ane-ir';
import { describe, expect, it } from 'vitest';
import { gradients } from './backward';
import { RMSNORM_GRAD } from './composite-rules';
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
