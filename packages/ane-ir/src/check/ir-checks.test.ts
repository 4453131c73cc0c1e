import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import {
  avgPool,
  causalSelfAttention,
  convTranspose2d,
  embedding,
  linear,
  maxPool,
  rmsNorm,
  rope,
  ropeTables,
  splitHeads,
} from '../composites';
import { ConstraintError } from '../graph/errors';
import { Graph } from '../graph/graph';
import { PACKING_FIX } from '../lower/io';
import { checkKernel, lowerGraph } from '../lower/kernel';
import { ANE_RULES, getRule } from '../mil/rules';
import { cast, concat, conv2d, matmul, mul, reshape } from '../ops/primitives';
import { IR_CHECKS, IR_RULE_ENFORCEMENT, WEIGHT_GRAD_KIND } from './ir-checks';

/** The ConstraintError `build` throws (failing the test when it throws nothing). */
function constraintError(build: () => unknown): ConstraintError {
  try {
    build();
  } catch (error) {
    if (error instanceof ConstraintError) return error;
    throw error;
  }
  throw new Error('expected a ConstraintError');
}

/**
 * Checks that a violation message says what, where, the symptom, the fix (the rule's, or the one
 * given for this case) and the rule.
 */
function expectRuleMessage(message: string, ruleId: string, chip = 'M4', fix = getRule(ruleId).fix): void {
  expect(message).toContain(`[ANE rule ${ruleId}, ${chip}]`);
  expect(message).toContain(`Fix: ${fix}`);
  expect(message).toMatch(/\(op [a-z_]+ '[^']+'\)/);
}

describe('every IR-enforced rule is enforced somewhere (no drift)', () => {
  const irRules = ANE_RULES.filter((rule) => rule.enforcement === 'ir').map((rule) => rule.id);

  it('lists where each rule with enforcement ir is enforced, and nothing else', () => {
    expect([...IR_RULE_ENFORCEMENT.keys()].sort()).toEqual([...irRules].sort());
  });

  it('registers kernel checks only for ir rules', () => {
    for (const id of IR_CHECKS.keys()) expect(getRule(id).enforcement, id).toBe('ir');
  });

  it('has a test below that triggers each of them', () => {
    const source = readFileSync(fileURLToPath(import.meta.url), 'utf8');
    for (const id of irRules) expect(source, id).toContain(`it('${id}: `);
  });
});

describe('each IR rule, triggered', () => {
  it('emit-wide-row-concat: a tensor reshaped into one very wide row concatenated with other widths', () => {
    const g = new Graph();
    const x = g.input('x', [128, 256]);
    const row = g.input('row', [1, 64]);
    const wide = reshape(x, [1, 128 * 256], { name: 'flat' });
    g.output('joined', concat([wide, row], 1, { name: 'joined' }));
    const error = constraintError(() => lowerGraph(g, { io: 'separate' }));
    expect(error.ruleId).toBe('emit-wide-row-concat');
    expect(error.message).toContain(
      "concat joins 'flat' reshaped into one row of 32768 (over 16384) with rows of other widths",
    );
    expect(error.message).toContain("(op concat 'joined')");
    expectRuleMessage(error.message, 'emit-wide-row-concat');
  });

  it('dim-internal-extents: an internal reshape of a composite over the chip spatial cap', () => {
    const g = new Graph();
    const x = g.input('x', [64, 1024]);
    const tables = ropeTables(g, 1024, 64);
    g.output('y', rope(splitHeads(x, 1), tables, { name: 'rope' }));
    const error = constraintError(() => lowerGraph(g, { chip: 'M1' }));
    expect(error.ruleId).toBe('dim-internal-extents');
    expect(error.message).toContain(
      "an internal tensor of rope 'rope' is [1, 32768, 2] (spatial axis 32768 > 16384 on M1)",
    );
    expectRuleMessage(error.message, 'dim-internal-extents', 'M1');
    // The same graph fits the A16 cap.
    expect(() => lowerGraph(g, { chip: 'M4' })).not.toThrow();
  });

  it('op-conv-transpose-stride: a transposed conv with a stride above 1', () => {
    const g = new Graph();
    const x = g.input('x', [1, 8, 4, 4]);
    const w = g.param('w', [8, 4, 3, 3], { trainable: false });
    const error = constraintError(() => convTranspose2d(x, w, { strides: [2, 2] }));
    expect(error.ruleId).toBe('op-conv-transpose-stride');
    expect(error.message).toContain('conv_transpose with strides [2, 2]');
    expectRuleMessage(error.message, 'op-conv-transpose-stride', 'M4');
    expect(convTranspose2d(x, w).shape).toEqual([1, 4, 6, 6]);
  });

  it('op-pool-vjp-envelope: pools with overlapping or padded windows', () => {
    const g = new Graph();
    const x = g.input('x', [8, 64]);
    const overlapping = constraintError(() => avgPool(x, { kernel: 4, stride: 2 }));
    expect(overlapping.ruleId).toBe('op-pool-vjp-envelope');
    expect(overlapping.message).toContain(
      'avg_pool with kernel 4, stride 2, pad 0 has overlapping or padded windows',
    );
    expectRuleMessage(overlapping.message, 'op-pool-vjp-envelope');
    const padded = constraintError(() => maxPool(x, { kernel: 4, pad: 1 }));
    expect(padded.message).toContain('max_pool with kernel 4, stride 4, pad 1');
    expect(avgPool(x, { kernel: 4 }).shape).toEqual([8, 16]);
  });

  it('op-rmsnorm-3matmul-fallback: a norm fused with three runtime-weight matmuls (a warning)', () => {
    const g = new Graph();
    const x = g.input('x', [64, 32], { maxAbs: 4 });
    const normed = rmsNorm(x, g.param('g', [64], { trainable: false }), { name: 'norm' });
    const q = linear(normed, g.param('wq', [64, 64]), { name: 'q' });
    const k = linear(normed, g.param('wk', [64, 64]), { name: 'k' });
    const v = linear(normed, g.param('wv', [64, 64]), { name: 'v' });
    g.output('qkv', concat([q, k, v], 0));
    const lowered = lowerGraph(g);
    const warning = lowered.warnings.find((w) => w.ruleId === 'op-rmsnorm-3matmul-fallback');
    expect(warning?.message).toContain(
      "the kernel fuses a norm with 3 runtime-weight matmuls ('q.y', 'k.y', 'v.y')",
    );
    expectRuleMessage(warning!.message, 'op-rmsnorm-3matmul-fallback');
    const strict = constraintError(() => lowerGraph(g, { strict: true }));
    expect(strict.ruleId).toBe('op-rmsnorm-3matmul-fallback');
  });

  it('io-layout: a kernel I/O whose last axis is a few bytes under many rows (a warning)', () => {
    const g = new Graph();
    const x = g.input('x', [256, 4]);
    g.output('y', mul(x, 2));
    const warning = lowerGraph(g).warnings.find((w) => w.ruleId === 'io-layout');
    expect(warning?.message).toContain(
      "kernel I/O 'x' [1, 256, 1, 4] has a last axis of 8 bytes under 256 rows (8x padding)",
    );
    expect(warning?.message).toContain('[ANE rule io-layout, M4]');
  });

  it('rt-weights-as-inputs: a trainable conv weight, and a weight that cannot pack', () => {
    const g = new Graph();
    const x = g.input('x', [1, 8, 4, 4]);
    g.output('y', conv2d(x, g.param('w', [8, 8, 1, 1]), { name: 'conv' }));
    const baked = constraintError(() => lowerGraph(g));
    expect(baked.ruleId).toBe('rt-weights-as-inputs');
    expect(baked.message).toContain(
      "trainable weight 'w' is a conv weight: conv takes only constant weights, which would bake it into the program",
    );
    expectRuleMessage(baked.message, 'rt-weights-as-inputs');

    const h = new Graph();
    const a = h.input('a', [48, 64]);
    const hidden = linear(a, h.param('w1', [96, 48]), { name: 'up' });
    h.output('y', linear(hidden, h.param('w2', [32, 96]), { name: 'down' }));
    const unpackable = constraintError(() => lowerGraph(h));
    expect(unpackable.ruleId).toBe('rt-weights-as-inputs');
    expect(unpackable.message).toContain(
      "trainable weight 'w2' [32, 96] shares no axis with the kernel's 48 channels; spatial packing needs equal channel counts",
    );
  });

  it('perf-attention-tiles: a score matrix with more than 512 query rows (a warning)', () => {
    const g = new Graph();
    const x = g.input('x', [32, 1024]);
    const w = (name: string) => g.param(name, [32, 32]);
    g.output(
      'y',
      causalSelfAttention(x, { wq: w('wq'), wk: w('wk'), wv: w('wv'), wo: w('wo') }, { heads: 1 }),
    );
    const warning = lowerGraph(g).warnings.find((w) => w.ruleId === 'perf-attention-tiles');
    expect(warning?.message).toContain(
      'softmax over scores [1, 1024, 1024] materializes 1024 query rows at once (over 512)',
    );
    expectRuleMessage(warning!.message, 'perf-attention-tiles');
  });

  it('ir-single-io: activations that share neither the channel count nor the sequence length', () => {
    const g = new Graph();
    const a = g.input('a', [64, 32]);
    const b = g.input('b', [48, 16]);
    g.output('y', concat([reshape(a, [1, 2048]), reshape(b, [1, 768])], 1));
    const error = constraintError(() => lowerGraph(g));
    expect(error.ruleId).toBe('ir-single-io');
    expect(error.message).toContain(
      'activations [64, 32], [48, 16] share neither the channel count (spatial packing) nor the sequence length (channel packing)',
    );
    // Packing failures name what works instead of the rule's generic fix.
    expectRuleMessage(error.message, 'ir-single-io', 'M4', PACKING_FIX);
    expect(lowerGraph(g, { io: 'separate' }).program.inputs.map((s) => s.name)).toEqual(['a', 'b']);
  });

  it('ir-fp16-sum-of-squares: an RMSNorm with no declared bound, or a bound that overflows', () => {
    const unbounded = new Graph();
    const x = unbounded.input('x', [64, 32]);
    unbounded.output('y', rmsNorm(x, unbounded.param('g', [64], { trainable: false }), { name: 'norm' }));
    const error = constraintError(() => lowerGraph(unbounded));
    expect(error.ruleId).toBe('ir-fp16-sum-of-squares');
    expect(error.message).toContain(
      "sum of 64 squares of 'x', which has no declared bound (maxAbs) (op reduce_sum 'norm.ss')",
    );
    expectRuleMessage(error.message, 'ir-fp16-sum-of-squares');
    // The symptom speaks of this norm's dimension, not the rule table's example (D = 768):
    // 64 squares reach 65504 at an RMS of sqrt(65504 / 64) = 32.0.
    expect(error.message).toContain('(D = 64 reaches 65504 at an RMS of 32)');
    expect(error.message).not.toContain('768');

    const large = new Graph();
    const y = large.input('x', [64, 32], { maxAbs: 40 });
    large.output('y', rmsNorm(y, large.param('g', [64], { trainable: false }), { name: 'norm' }));
    expect(constraintError(() => lowerGraph(large)).message).toContain(
      "sum of 64 squares of 'x' (|x| <= 40) can reach 102400 > 65504",
    );

    const fits = new Graph();
    const z = fits.input('x', [64, 32], { maxAbs: 30 });
    fits.output('y', rmsNorm(z, fits.param('g', [64], { trainable: false })));
    expect(() => lowerGraph(fits)).not.toThrow();
  });

  it('ir-fp16-range-bound: declared bounds whose product overflows fp16 (a warning)', () => {
    const g = new Graph();
    const x = g.input('x', [64, 32], { maxAbs: 1000 });
    g.output('y', mul(x, x, { name: 'square' }));
    const warning = lowerGraph(g).warnings.find((w) => w.ruleId === 'ir-fp16-range-bound');
    expect(warning?.message).toContain(
      "result can reach 1000000 given the declared input bounds (fp16 max 65504) (op mul 'square')",
    );
    expectRuleMessage(warning!.message, 'ir-fp16-range-bound');
  });

  it('ir-host-only-op: an embedding lookup forced into a kernel', () => {
    const g = new Graph();
    const tokens = g.input('tokens', [32], { dtype: 'int32' });
    g.output('x', embedding(tokens, g.param('table', [100, 64]), { name: 'embed' }));
    const result = checkKernel({ nodes: g.nodes, outputs: [g.outputs[0]!.tensor] });
    const error = result.errors.find((e) => e.ruleId === 'ir-host-only-op');
    expect(error?.message).toContain("gather has no ANE lowering (op gather 'embed.rows')");
    expectRuleMessage(error!.message, 'ir-host-only-op');
  });

  it('ir-weight-grad-host: a weight gradient placed in a kernel (a warning)', () => {
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
    const warning = lowerGraph(g, { io: 'separate' }).warnings.find(
      (w) => w.ruleId === 'ir-weight-grad-host',
    );
    expect(warning?.message).toContain(
      "weight gradient 'dw' [64, 48] accumulates in fp16 on the ANE (op matmul 'dw.gemm')",
    );
    expectRuleMessage(warning!.message, 'ir-weight-grad-host');
  });
});

describe('the checker reads MIL rules too (shape limits, I/O dtypes, alignment, per-chip caveats)', () => {
  it('refuses fp32 I/O on M1 and M2, where in-graph casts do not compile', () => {
    const g = new Graph();
    const x = g.input('x', [64, 32], { dtype: 'fp32' });
    g.output('y', cast(mul(cast(x, 'fp16'), 2), 'fp32'));
    const error = constraintError(() => lowerGraph(g, { chip: 'M2' }));
    expect(error.ruleId).toBe('dtype-fp32-io-in-memory');
    expect(error.message).toContain('[ANE rule dtype-fp32-io-in-memory, M2]');
    expect(() => lowerGraph(g, { chip: 'M4' })).not.toThrow();
  });

  it('refuses spatial extents over the family cap', () => {
    const g = new Graph();
    const x = g.input('x', [8, 20000]);
    g.output('y', mul(x, 2));
    const error = constraintError(() => lowerGraph(g, { chip: 'M3' }));
    expect(error.ruleId).toBe('dim-spatial');
    expect(() => lowerGraph(g, { chip: 'M4' })).not.toThrow();
  });

  it('warns when the innermost I/O axis is not a multiple of 64 bytes', () => {
    const g = new Graph();
    const x = g.input('x', [64, 40]);
    g.output('y', mul(x, 2));
    const warnings = lowerGraph(g).warnings.filter((w) => w.ruleId === 'io-alignment');
    expect(warnings.length).toBeGreaterThan(0);
    expect(warnings[0]!.message).toContain('[ANE rule io-alignment, M4]');
  });

  it('names the graph op in MIL rule violations', () => {
    const g = new Graph();
    const x = g.input('x', [16, 32]);
    const table = g.param('w', [16, 16], { trainable: false });
    g.output(
      'y',
      matmul(reshape(x, [1, 16, 32]), reshape(table, [1, 16, 16]), { transposeX: true, name: 'product' }),
    );
    const { errors, warnings } = checkKernel({ nodes: g.nodes, outputs: [g.outputs[0]!.tensor] });
    expect(errors).toEqual([]);
    expect(warnings.every((w) => w.message.includes('[ANE rule'))).toBe(true);
  });
});
