import { describe, expect, it } from 'vitest';
import { WEIGHT_GRAD_KIND } from '../check/ir-checks';
import { linear, rmsNorm } from '../composites';
import { ConstraintError } from '../graph/errors';
import { Graph } from '../graph/graph';
import type { Tensor } from '../graph/tensor';
import { matmul, mul } from '../ops/primitives';
import { llamaGraph, STORIES_110M } from '../testing/models.test-helper';
import { kernelScopes, partition } from './partition';

function constraintError(run: () => unknown): ConstraintError {
  try {
    run();
  } catch (error) {
    if (error instanceof ConstraintError) return error;
    throw error;
  }
  throw new Error('expected a ConstraintError');
}

describe('the Stories110M forward plan (shapes only, no weights)', () => {
  it('lowers and prints a fixed, small number of distinct programs, not one per layer', () => {
    const started = performance.now();
    const { graph } = llamaGraph(STORIES_110M);
    const plan = partition(graph);
    const elapsed = performance.now() - started;
    // Measured, never asserted (tests do not assert on time).
    console.log(`Stories110M: build + partition + lower + print took ${elapsed.toFixed(0)} ms`);

    expect(plan.programs.length).toBe(3);
    expect(plan.kernels.length).toBe(2 * 12 + 1);
    const [attention, ffn, classifier] = plan.programs;
    expect(attention!.instances.length).toBe(12);
    expect(ffn!.instances.length).toBe(12);
    expect(classifier!.instances.length).toBe(1);
    // Attention kernel: xnorm | x | Wqᵀ | Wkᵀ | Wvᵀ | Woᵀ on 768 channels: 2·256 + 4·768 columns.
    expect(attention!.program.inputs).toEqual([{ name: 'x', dtype: 'fp16', shape: [1, 768, 1, 3584] }]);
    // SwiGLU kernel: x2norm | x2 | W1ᵀ | W3ᵀ | W2: 2·256 + 3·2048 columns (maderix/ANE's ffnFused width).
    expect(ffn!.program.inputs[0]!.shape).toEqual([1, 768, 1, 6656]);
    expect(classifier!.program.outputs[0]!.shape).toEqual([1, 32000, 1, 256]);
    // Every program text is independent of the layer it runs for; only staging differs.
    const layer3 = plan.kernels[attention!.instances[3]!]!;
    expect(layer3.inputs[0]!.segments.map((s) => s.source)).toEqual([
      'layers.3.attn_norm.out',
      'layers.2.out',
      'layers.3.wq',
      'layers.3.wk',
      'layers.3.wv',
      'layers.3.wo',
    ]);
    // 12 attention weights ×4 + FFN ×3 are trainable: no weight blobs, only the mask and RoPE tables.
    expect([...attention!.program.weights.keys()].sort()).toEqual([
      '@model_path/weights/mask.bin',
      '@model_path/weights/rope_cos.bin',
      '@model_path/weights/rope_sin_signed.bin',
    ]);
    expect(ffn!.program.weights.size).toBe(0);

    const hostKinds = plan.hostOps.map((op) => op.kind);
    expect(hostKinds.filter((k) => k === 'rmsnorm').length).toBe(25);
    expect(hostKinds.filter((k) => k === 'embedding').length).toBe(1);
    expect(plan.hostOps.find((op) => op.kind === 'embedding')!.ruleId).toBe('ir-host-only-op');
    expect(plan.hostOps.find((op) => op.kind === 'rmsnorm')!).toMatchObject({
      ruleId: 'ir-fp16-sum-of-squares',
      reason: 'sum of 768 squares of an input with no declared bound can exceed 65504 in fp16',
    });

    const report = plan.report();
    expect(report).toContain('Plan for M4: 25 ANE kernel runs of 3 distinct programs, 26 host ops');
    expect(report).toContain('P0');
    expect(report).toContain(
      '12 runs; in x fp16[1, 768, 1, 3584] (5.25 MiB); out y fp16[1, 768, 1, 256] (384.0 KiB)',
    );
    expect(report).toContain("host embedding 'embed'");
  });

  it('keeps the 32000-column classifier off the ANE on chips whose spatial cap it exceeds', () => {
    const { graph } = llamaGraph({ ...STORIES_110M, layers: 1 });
    // Not silently: the caller allows the host fallback, else it is a ConstraintError.
    const error = constraintError(() => partition(graph, { chip: 'M2' }));
    expect(error.ruleId).toBe('dim-spatial');
    expect(error.node).toBe('output.y');
    expect(error.message).toContain("no ANE kernel can hold matmul 'output.y'");
    expect(error.message).toContain("hostFallback: 'allow'");
    const plan = partition(graph, { chip: 'M2', hostFallback: 'allow' });
    const classifier = plan.placements.find((p) => p.node === 'output.y')!;
    expect(classifier).toMatchObject({ device: 'host', ruleId: 'dim-spatial' });
    expect(classifier.reason).toContain(
      'its packed input [1, 768, 1, 32256] is wider than the M2 spatial cap 16384',
    );
  });
});

describe('placement and kernel formation', () => {
  it('places every op with a reason, and runs steps after what they read', () => {
    const plan = partition(
      llamaGraph({ dim: 64, heads: 4, hidden: 96, seq: 32, layers: 2, vocab: 100 }).graph,
    );
    for (const placement of plan.placements) expect(placement.reason.length).toBeGreaterThan(0);
    const done = new Set<string>();
    for (const step of plan.steps) {
      const nodes =
        step.kind === 'kernel' ? plan.kernels[step.index]!.nodes : plan.hostOps[step.index]!.nodes;
      const own = new Set(nodes);
      for (const node of nodes) {
        for (const input of node.inputs) {
          const produced = plan.placements.some((p) => p.node === input.name);
          if (produced && !own.has(input))
            expect(done.has(input.name), `${node.name} reads ${input.name}`).toBe(true);
        }
      }
      for (const node of nodes) done.add(node.name);
    }
  });

  it('splits kernels where the channel count changes (packing needs equal channel counts)', () => {
    const g = new Graph();
    const x = g.input('x', [64, 32]);
    const up = linear(x, g.param('w1', [96, 64]), { name: 'up' });
    g.output('y', linear(up, g.param('w2', [48, 96]), { name: 'down' }));
    const plan = partition(g);
    expect(plan.kernels.map((k) => k.inputs[0]!.spec.shape)).toEqual([
      [1, 64, 1, 32 + 96],
      [1, 96, 1, 32 + 48],
    ]);
  });

  it('ends a norm kernel before three runtime-weight matmuls read it (the CPU-fallback pattern)', () => {
    const g = new Graph();
    const x = g.input('x', [64, 32], { maxAbs: 4 });
    const normed = rmsNorm(x, g.param('g', [64]), { name: 'norm' });
    const q = linear(normed, g.param('wq', [64, 64]), { name: 'q' });
    const k = linear(normed, g.param('wk', [64, 64]), { name: 'k' });
    const v = linear(normed, g.param('wv', [64, 64]), { name: 'v' });
    g.output('q', q);
    g.output('k', k);
    g.output('v', v);
    const plan = partition(g);
    expect(plan.hostOps).toEqual([]);
    const normKernel = plan.kernels.find((kernel) => kernel.nodes.some((n) => n.name === 'norm.ss'))!;
    expect(normKernel.nodes.some((n) => n.op.kind === 'matmul')).toBe(false);
    expect(plan.warnings.filter((w) => w.ruleId === 'op-rmsnorm-3matmul-fallback')).toEqual([]);
  });

  it('honours caller placements, and refuses a forced placement the checker rejects', () => {
    const g = new Graph();
    const x = g.input('x', [64, 32]);
    g.output('y', rmsNorm(x, g.param('g', [64]), { name: 'norm' }));
    expect(partition(g, { placement: { norm: 'host' } }).kernels.length).toBe(0);
    expect(() => partition(g, { placement: { norm: 'ane' } })).toThrow(ConstraintError);
    try {
      partition(g, { placement: { norm: 'ane' } });
    } catch (error) {
      expect((error as ConstraintError).ruleId).toBe('ir-fp16-sum-of-squares');
    }
    expect(() => partition(g, { placement: { nothing: 'ane' } })).toThrow("placement names 'nothing'");
  });
});

describe('host ops carry their composite call', () => {
  it('records the call’s operands, attributes and result for a host kernel to use', () => {
    const g = new Graph();
    const x = g.input('x', [8, 4]);
    const gain = g.param('gain', [8]);
    const y = rmsNorm(x, gain, { eps: 1e-6, name: 'norm' });
    g.output('y', y);
    const plan = partition(g);
    const norm = plan.hostOps.find((op) => op.kind === 'rmsnorm')!;
    expect(norm.composite?.args).toEqual({ x, gain, eps: 1e-6 });
    expect(norm.composite?.result).toBe(y);
    expect(norm.composite?.name).toBe('norm');
  });
});

describe('the plan names the graph outputs', () => {
  it('lists every g.output with its name and tensor, in declaration order', () => {
    const g = new Graph();
    const x = g.input('x', [8, 4]);
    const w = g.param('w', [8, 8]);
    const y = linear(x, w, { name: 'proj' });
    const z = rmsNorm(y, g.param('gain', [8]), { name: 'norm' });
    g.output('normed', z);
    g.output('projected', y);
    const plan = partition(g);
    expect(plan.outputs.map((o) => o.name)).toEqual(['normed', 'projected']);
    expect(plan.outputs.map((o) => o.tensor)).toEqual([z, y]);
  });
});

describe('kernels are formed within a scope', () => {
  /** A layer: a composite call holding other calls (a linear), then an elementwise op. */
  const layer = (x: Tensor, l: number) =>
    x.graph.composite('block', `layers.${l}`, () =>
      mul(linear(x, x.graph.param(`layers.${l}.w`, [64, 64]), { name: 'proj' }), 0.5, { name: 'half' }),
    );

  it('never spans two layers, so every layer runs the same program', () => {
    const g = new Graph();
    let h = g.input('x', [64, 32]);
    for (let l = 0; l < 3; l++) h = layer(h, l);
    g.output('y', h);
    const plan = partition(g);
    // Before scopes: one kernel of all three layers.
    expect(plan.kernels.length).toBe(3);
    expect(plan.programs.length).toBe(1);
    for (const [l, kernel] of plan.kernels.entries())
      expect(kernel.nodes.every((n) => n.name.startsWith(`layers.${l}.`))).toBe(true);
  });

  it('puts backward nodes (<forward>.grad.*, <forward>.recompute.*) in the backward of their forward node', () => {
    const g = new Graph();
    const x = g.input('x', [64, 32]);
    const y = layer(x, 0);
    const dy = g.scope(`${y.name}.grad`, () => mul(y, 2, { name: 'dy' }));
    const again = g.scope(`${y.name}.recompute`, () => mul(y, 3, { name: 'again' }));
    const top = mul(x, 4, { name: 'top' });
    const scopes = kernelScopes([y, dy, again, top]);
    expect(scopes.get(y)).toBe("forward of block 'layers.0'");
    expect(scopes.get(dy)).toBe("backward of block 'layers.0'");
    expect(scopes.get(again)).toBe("backward of block 'layers.0'");
    expect(scopes.get(top)).toBe('forward of top');
  });
});

describe('host ops of nested composite calls', () => {
  it('runs a call placed on the host with the nested calls it reads as one host op (no cycle)', () => {
    const g = new Graph();
    const x = g.input('x', [64, 32]);
    const y = g.composite('outer', 'outer', () => {
      const a = mul(x, 2, { name: 'a' });
      const b = g.composite('inner', 'inner', () => mul(a, 3, { name: 'b' }));
      return mul(b, a, { name: 'c' });
    });
    g.output('y', mul(y, 5, { name: 'after' }));
    // Grouped by the innermost call, 'outer' (a, c) and 'inner' (b) each waited on the other.
    const plan = partition(g, { placement: { outer: 'host' } });
    expect(plan.hostOps.map((op) => [op.kind, op.nodes.map((n) => n.name)])).toEqual([
      ['outer', ['outer.a', 'outer.inner.b', 'outer.c']],
    ]);
    expect(plan.steps).toEqual([
      { kind: 'host', index: 0 },
      { kind: 'kernel', index: 0 },
    ]);
  });
});

describe('weight gradients', () => {
  function weightGradGraph() {
    const g = new Graph();
    const dy = g.input('dy', [64, 32]);
    const x = g.input('x', [48, 32]);
    const w = g.param('w', [64, 48]);
    const dw = g.composite(WEIGHT_GRAD_KIND, 'dw', () => matmul(dy, x, { transposeY: true, name: 'gemm' }), {
      weight: w,
      dy,
      x,
    });
    g.output('dw', dw);
    g.output('dx', matmul(w, dy, { transposeX: true, name: 'dx' }));
    return g;
  }

  it('places weight_grad calls on the host by rule ir-weight-grad-host', () => {
    const plan = partition(weightGradGraph());
    expect(plan.hostOps.map((op) => [op.kind, op.name, op.ruleId])).toEqual([
      ['weight_grad', 'dw', 'ir-weight-grad-host'],
    ]);
    expect(plan.kernels.map((k) => k.nodes.map((n) => n.name))).toEqual([['dx']]);
    expect(plan.report()).toContain('[ir-weight-grad-host]');
    // The same placement asked by the caller keeps the rule as the reason.
    expect(partition(weightGradGraph(), { placement: { dw: 'host' } }).hostOps[0]!.ruleId).toBe(
      'ir-weight-grad-host',
    );
  });

  it('runs one on the ANE when the caller places it there (with the rule as a warning)', () => {
    const plan = partition(weightGradGraph(), { placement: { dw: 'ane' }, io: 'separate' });
    expect(plan.hostOps).toEqual([]);
    expect(plan.warnings.map((w) => w.ruleId)).toContain('ir-weight-grad-host');
  });
});

describe("a vocabulary beyond the chip's limits", () => {
  /** The classifier's input gradient as ane-autograd derives it: tableᵀ · dlogits, table trainable. */
  function classifierDx(vocab: number, options: { trainable?: boolean } = {}) {
    const g = new Graph();
    const dlogits = g.input('dlogits', [vocab, 64]);
    const table = g.param('embed', [vocab, 64], { trainable: options.trainable ?? true });
    g.output('dx', matmul(table, dlogits, { transposeX: true, name: 'output.y.grad.db' }));
    return g;
  }

  it('puts the classifier dx on the host on M1 (its table laid out over the spatial cap), with the rule', () => {
    // The lowering names the error for the table's matmul layout ('embed_mm', from the input
    // 'embed'), not a graph op: the partitioner maps it to the op that reads the table.
    const error = constraintError(() => partition(classifierDx(32000), { chip: 'M1' }));
    expect(error.ruleId).toBe('dim-spatial');
    expect(error.message).toContain("no ANE kernel can hold matmul 'output.y.grad.db'");
    const plan = partition(classifierDx(32000), { chip: 'M1', hostFallback: 'allow' });
    expect(plan.kernels).toEqual([]);
    expect(plan.hostOps.map((op) => [op.kind, op.name, op.ruleId])).toEqual([
      ['matmul', 'output.y.grad.db', 'dim-spatial'],
    ]);
    expect(plan.report()).toContain('over the M1 cap of 16384 [dim-spatial]');
    // Under the cap it stays on the ANE.
    expect(partition(classifierDx(16000), { chip: 'M1' }).hostOps).toEqual([]);
  });

  it('puts a 151936-row classifier dx on the host on M4 (over the 65536 channel cap)', () => {
    const plan = partition(classifierDx(151936), { chip: 'M4', hostFallback: 'allow' });
    expect(plan.kernels).toEqual([]);
    expect(plan.hostOps.map((op) => [op.kind, op.ruleId])).toEqual([['matmul', 'dim-channel']]);
  });

  it('applies dim-conv-32000-cin to convs (as the rule table says), not to the classifier dx matmul', () => {
    // The classifier dx contracts over 32000 rows as a matmul, trainable or frozen table alike
    // (maderix/ANE's classifier backward is such a matmul): no conv, and the M4 checker passes it.
    for (const trainable of [true, false]) {
      const plan = partition(classifierDx(32000, { trainable }), { chip: 'M4' });
      expect(plan.hostOps).toEqual([]);
      expect(plan.programs[0]!.program.inputs[0]!.shape[1]).toBe(32000);
      expect(plan.programs[0]!.program.mil).not.toMatch(/= conv\(/);
    }
    // A conv with 32000 input channels (a frozen projection from 32000 features) is refused by
    // the rule, and falls back to the host with it when allowed.
    const conv = () => {
      const g = new Graph();
      const x = g.input('x', [32000, 64], { maxAbs: 1 });
      g.output('y', linear(x, g.param('w', [8, 32000], { trainable: false }), { name: 'proj' }));
      return g;
    };
    expect(constraintError(() => partition(conv())).ruleId).toBe('dim-conv-32000-cin');
    expect(partition(conv(), { hostFallback: 'allow' }).hostOps.map((op) => [op.kind, op.ruleId])).toEqual([
      ['linear', 'dim-conv-32000-cin'],
    ]);
  });
});
