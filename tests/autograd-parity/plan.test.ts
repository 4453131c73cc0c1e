/**
 * Forward+backward plans of Llama models in ane-ir's default packed I/O: kernels never span two
 * layers, so the number of distinct programs does not grow with depth; every host op says why.
 */
import { valueAndGrad } from 'ane-autograd';
import { mul, partition, reduceSum } from 'ane-ir';
import { describe, expect, it } from 'vitest';
import {
  type LlamaConfig,
  llamaGraph,
  STORIES_110M,
} from '../../packages/ane-ir/src/testing/models.test-helper';

/** A Llama graph with a stand-in loss (mean of squared outputs), its backward, and its packed plan. */
function derivedPlan(config: LlamaConfig) {
  const started = performance.now();
  const { graph, output } = llamaGraph(config);
  const [channels, positions] = output.shape as [number, number];
  const loss = mul(reduceSum(mul(output, output), [0, 1], { keepDims: true }), 1 / (channels * positions));
  const result = valueAndGrad(graph, { loss });
  const plan = partition(graph, { placement: result.placement });
  const report = plan.report();
  return { plan, result, report, ms: performance.now() - started };
}

describe('forward+backward plans in packed mode', () => {
  it('has the same number of distinct programs for 2 and 12 layers', () => {
    const small = { dim: 64, heads: 4, hidden: 96, seq: 32 };
    const two = derivedPlan({ ...small, layers: 2 });
    const twelve = derivedPlan({ ...small, layers: 12 });
    console.log(two.report);
    expect(twelve.plan.programs.length).toBe(two.plan.programs.length);
    expect(twelve.plan.kernels.length).toBeGreaterThan(two.plan.kernels.length);
  });

  it('Stories110M', () => {
    const two = derivedPlan({ ...STORIES_110M, layers: 2 });
    const twelve = derivedPlan(STORIES_110M);
    console.log(`Stories110M forward+backward: ${twelve.ms.toFixed(0)} ms; 2 layers ${two.ms.toFixed(0)} ms`);
    console.log(twelve.report.split('\n').slice(0, 40).join('\n'));
    expect(twelve.plan.programs.length).toBe(two.plan.programs.length);
  });
});
