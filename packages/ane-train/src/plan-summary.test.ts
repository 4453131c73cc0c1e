import { valueAndGrad } from 'ane-autograd';
import { embedding, Graph, linear, partition, rmsNorm, softmaxCrossEntropy } from 'ane-ir';
import { describe, expect, it } from 'vitest';
import { PRESETS } from './model/config';
import { buildTrainingGraph } from './model/training-graph';
import { describePlan, formatPlanSummary, type PlanSummarySource } from './plan-summary';

// A model small enough to count by hand: tokens -> embedding [V, D] -> linear W [D, D] -> RMSNorm
// (gain [D]) -> tied classifier (the embedding table) -> cross-entropy, S positions.
const S = 8;
const D = 16;
const V = 32;

function handModel(): PlanSummarySource {
  const g = new Graph();
  const tokens = g.input('tokens', [S], { dtype: 'int32' });
  const targets = g.input('targets', [S], { dtype: 'int32' });
  const table = g.param('embed', [V, D]);
  const w = g.param('w', [D, D]);
  const gain = g.param('norm', [D]);
  const h = linear(embedding(tokens, table, { name: 'embed' }), w, { name: 'proj' });
  const logits = linear(rmsNorm(h, gain, { name: 'norm' }), table, { name: 'output' });
  const loss = softmaxCrossEntropy(logits, targets, { name: 'xent' });
  const { placement } = valueAndGrad(g, { loss, lossScale: true });
  const plan = partition(g, { placement });
  return {
    config: { ...PRESETS.tiny, hidden_size: D, vocab_size: V, num_hidden_layers: 0 },
    seq: S,
    chip: plan.chip,
    plan,
    parameters: [
      { name: 'embed', shape: [V, D] },
      { name: 'w', shape: [D, D] },
      { name: 'norm', shape: [D] },
    ],
    hostPlacements: [{ op: 'output', reason: 'a reason the model planner gave' }],
  };
}

describe('describePlan', () => {
  it('counts parameters and the fp32 training state by hand', () => {
    const summary = describePlan(handModel(), { batch: 2 });
    const params = V * D + D * D + D; // 784
    expect(summary.parameters).toBe(784);
    expect(summary.memory.masterWeightBytes).toBe(params * 4);
    expect(summary.memory.gradientBytes).toBe(params * 4);
    expect(summary.memory.optimizerStateBytes).toBe(params * 8); // AdamW m and v
    // tokens + targets: int32 [S] each, two sequences
    expect(summary.memory.inputBytes).toBe(2 * S * 4 * 2);
    // Values passed between steps, gradients excluded: [D, S] ones (embed.out, proj.y, norm.xr,
    // norm.out, the classifier's dx, the norm backward's centered and dx, the embedding's dx),
    // [V, S] ones (logits, dlogits), [V, D] ones (the classifier's dW part of the tied table, the
    // scatter-add of the lookup), and the norm's 1/rms [1, S].
    expect(summary.memory.activationBytesPerSequence).toBe((8 * D * S + 2 * V * S + 2 * V * D + S) * 4);
    // the loss [1, 1] and one fp32 gradient per parameter, each sequence's and the batch sum
    expect(summary.memory.outputBytes).toBe(2 * (1 + params) * 4);
  });

  it('reads the matmul kernels FLOPs and scales per-step figures by the batch', () => {
    const one = describePlan(handModel());
    const three = describePlan(handModel(), { batch: 3 });
    const flops = one.programList.map((p) => p.flopsPerRun);
    expect(flops).toContain(2 * S * D * D); // proj: [S, D] x [D, D]
    expect(flops).toContain(2 * S * D * V); // classifier: [S, D] x [D, V]
    expect(three.flopsPerStep.device).toBe(3 * one.flopsPerStep.device);
    expect(three.flopsPerStep.host).toBe(3 * one.flopsPerStep.host);
    expect(three.kernelRunsPerStep).toBe(3 * one.kernelRunsPerSequence);
    expect(three.ioBytesPerStep.total).toBe(3 * one.ioBytesPerStep.total);
    // Device I/O from the programs' declared buffers: fp16 elements × 2 bytes, every kernel run.
    const source = handModel();
    let io = 0;
    for (const kernel of source.plan.kernels) {
      const program = source.plan.programs[kernel.program]!.program;
      for (const spec of [...program.inputs, ...program.outputs])
        io += spec.shape.reduce((n, d) => n * d, 1) * (spec.dtype === 'fp16' ? 2 : 4);
    }
    expect(three.ioBytesPerStep.total).toBe(3 * io);
  });

  it('names host ops by kind with the native kernel that runs them', () => {
    const summary = describePlan(handModel());
    const kinds = Object.fromEntries(summary.hostOpsByKind.map((k) => [k.kind, k]));
    // one weight gradient per parameter the ANE reads as a dense weight (w, the classifier, the gain)
    expect(kinds.weight_grad?.count).toBe(3);
    expect(kinds.weight_grad?.kernels).toContain('sgemm');
    expect(kinds.weight_grad?.ruleIds).toEqual(['ir-weight-grad-host']);
    expect(kinds.embedding?.count).toBe(1);
    expect(kinds.embedding?.kernels).toEqual(['embeddingForward']);
    expect(kinds.scatter_add?.kernels).toEqual(['embeddingBackward']);
    for (const kind of summary.hostOpsByKind) expect(kind.slowBecause).toEqual([]);
  });

  it('places every op with a reason, and keeps the model planner placements', () => {
    const source = handModel();
    const summary = describePlan(source);
    expect(summary.placements).toHaveLength(source.plan.placements.length);
    expect(summary.opsOnAne + summary.opsOnHost).toBe(source.plan.placements.length);
    for (const p of summary.placements) {
      expect(p.reason.length).toBeGreaterThan(0);
      expect(p.step).toMatch(/^(kernel|host)\d+$/);
    }
    const gather = summary.placements.find((p) => p.op === 'gather');
    expect(gather).toMatchObject({ device: 'host', ruleId: 'ir-host-only-op' });
    const grouped = summary.placementsByReason.reduce((n, g) => n + g.ops, 0);
    expect(grouped).toBe(source.plan.placements.length);
    expect(summary.hostPlacements).toEqual([{ op: 'output', reason: 'a reason the model planner gave' }]);
  });

  it('counts the staged fp16 weights: each linear weight once forward, once for dx; the gain once', () => {
    const summary = describePlan(handModel());
    // w and the tied table in the forward and in the input gradients; the RMSNorm gain in its backward
    expect(summary.memory.stagedWeightBytes).toBe((2 * D * D + 2 * V * D + D) * 2);
    expect(summary.memory.deviceBufferBytes).toBe(summary.ioBytesPerStep.total);
  });

  it('is JSON-able and renders as text', () => {
    const summary = describePlan(handModel(), { batch: 2 });
    expect(JSON.parse(JSON.stringify(summary))).toEqual(summary);
    const text = formatPlanSummary(summary);
    expect(text).toContain(`Programs: ${summary.programs} distinct`);
    expect(text).toContain('weight_grad ×3');
    expect(text).toContain('Placed on the host by the model planner');
  });

  it('rejects a batch that is not a whole number ≥ 1', () => {
    expect(() => describePlan(handModel(), { batch: 0 })).toThrow(/batch must be a whole number/);
  });

  it('has the same program count for 2 and 4 layers of the tiny preset', () => {
    const two = describePlan(buildTrainingGraph({ ...PRESETS.tiny, num_hidden_layers: 2 }, { seq: 32 }));
    const four = describePlan(buildTrainingGraph({ ...PRESETS.tiny, num_hidden_layers: 4 }, { seq: 32 }));
    expect(four.programs).toBe(two.programs);
    expect(four.kernelRunsPerSequence).toBeGreaterThan(two.kernelRunsPerSequence);
  });

  it('counts runs, not sequences, when a run computes several sequences', () => {
    const one = describePlan(buildTrainingGraph(PRESETS.tiny, { seq: 64 }), { batch: 8 });
    const four = describePlan(buildTrainingGraph(PRESETS.tiny, { seq: 64, sequences: 4 }), { batch: 8 });
    expect(one.sequencesPerPass).toBe(1);
    expect(four.sequencesPerPass).toBe(4);
    expect(four.programs).toBe(one.programs);
    expect(four.kernelRunsPerStep).toBe(four.kernelRunsPerSequence * 2);
    expect(one.kernelRunsPerStep).toBe(one.kernelRunsPerSequence * 8);
    expect(four.hostOpsPerStep).toBe(four.hostOpsPerSequence * 2);
    expect(formatPlanSummary(four)).toContain(
      'each pass of the plan computes 4 of them at once (256 positions, each sequence attending within itself), 2 passes a step',
    );
    expect(() =>
      describePlan(buildTrainingGraph(PRESETS.tiny, { seq: 64, sequences: 4 }), { batch: 6 }),
    ).toThrow(/batch 6 is not a multiple of the plan's 4 sequences per pass/);
  });
});
