/**
 * A Llama block (MHA and GQA, RoPE, SwiGLU) partitioned into ANE kernels and host ops, run through
 * `device.load` (kernels in the simulator, host ops on native host kernels), against a
 * float64 evaluation of the same graph.
 */
import { evaluate, partition } from 'ane-ir';
import { describe, expect, it } from 'vitest';
import { BASE, build, type Config } from './llama-model';
import { executePlan, worstRatio } from './support';

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
