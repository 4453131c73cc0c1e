/**
 * The forward graph is the training graph's forward: the same nodes (names, ops, shapes) in the
 * same order up to the classifier, the logits `[V, S]` as its one output, and the same host
 * placement of a classifier over the chip's spatial cap.
 */
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../errors';
import { SMALL } from '../testing/small-model';
import { buildForwardGraph, FORWARD_IO } from './forward-graph';
import { buildTrainingGraph } from './training-graph';

describe('buildForwardGraph', () => {
  it("has exactly the training graph's forward nodes and outputs the logits [V, S]", () => {
    const seq = 8;
    const forward = buildForwardGraph(SMALL, { seq });
    const training = buildTrainingGraph(SMALL, { seq });
    const describeNode = (n: { name: string; op: { kind: string }; shape: readonly number[] }) =>
      `${n.name} ${n.op.kind} [${n.shape.join(',')}]`;
    const forwardNodes = forward.graph.nodes.map(describeNode);
    // The training graph declares its targets input among them and continues with the loss.
    const trainingNodes = training.graph.nodes.map(describeNode).filter((n) => !n.startsWith('targets '));
    expect(forwardNodes.length).toBeGreaterThan(50);
    expect(trainingNodes.slice(0, forwardNodes.length)).toEqual(forwardNodes);
    expect(trainingNodes[forwardNodes.length]).toMatch(/^xent/);

    expect(forward.graph.outputs.map((o) => o.name)).toEqual([FORWARD_IO.logits]);
    expect(forward.graph.outputs[0]!.tensor.shape).toEqual([SMALL.vocab_size, seq]);
    expect(forward.plan.outputs.map((o) => o.name)).toEqual([FORWARD_IO.logits]);
    expect(forward.parameters.map((p) => p.name)).toEqual(training.parameters.map((p) => p.name));
    expect(forward.hostPlacements).toEqual([]);
  });

  it('puts a classifier wider than the chip spatial cap on the host, as training does', () => {
    // 16 positions + 16384 vocabulary columns: over M3's cap of 16384, within M4's 65536.
    const wide = { ...SMALL, vocab_size: 16384 };
    const m3 = buildForwardGraph(wide, { seq: 16, chip: 'M3' });
    const m3Training = buildTrainingGraph(wide, { seq: 16, chip: 'M3' });
    expect(m3.hostPlacements).toEqual(m3Training.hostPlacements);
    expect(m3.hostPlacements.map((p) => p.op)).toEqual(['output']);
    expect(m3.hostPlacements[0]!.reason).toContain('dim-spatial');
    const outputOps = (plan: typeof m3.plan) =>
      plan.placements.filter((p) => p.node.startsWith('output.')).map((p) => p.device);
    expect(new Set(outputOps(m3.plan))).toEqual(new Set(['host']));
    const m4 = buildForwardGraph(wide, { seq: 16, chip: 'M4' });
    expect(m4.hostPlacements).toEqual([]);
    expect(new Set(outputOps(m4.plan))).toEqual(new Set(['ane']));
  });

  it('refuses a window the model cannot run', () => {
    expect(() => buildForwardGraph(SMALL, { seq: 0 })).toThrow(ConfigError);
    expect(() => buildForwardGraph(SMALL, { seq: SMALL.max_position_embeddings + 1 })).toThrow(
      /max_position_embeddings/,
    );
  });
});
