/**
 * Where comparisons and selects run (rule `dtype-bool`: on the ANE a bool exists only between a
 * comparison and the selects that read it, never as kernel I/O). A mask computed and consumed in
 * one kernel stays on the ANE; a bool that would cross a kernel boundary sends its ops to the host,
 * and the plan says why.
 */
import { describe, expect, it } from 'vitest';
import { rmsNorm } from '../composites';
import { ConstraintError } from '../graph/errors';
import { Graph } from '../graph/graph';
import { lowerGraph, lowerKernel } from '../lower/kernel';
import { parseProgram } from '../mil/parse';
import { add, cast, equal, greater, less, log, matmul, mul, select } from '../ops/primitives';
import { partition } from './partition';

function placementOf(plan: ReturnType<typeof partition>, node: string) {
  const placement = plan.placements.find((p) => p.node === node);
  if (placement === undefined) throw new Error(`no placement for ${node}`);
  return placement;
}

describe('comparisons and selects in the partitioner', () => {
  it('a comparison read only by selects runs with them in one ANE kernel (ReLU backward mask)', () => {
    const g = new Graph();
    const x = g.input('x', [64, 32]);
    const dy = g.input('dy', [64, 32]);
    const mask = greater(x, 0, { name: 'mask' });
    g.output('dx', select(mask, dy, 0, { name: 'dx' }));
    g.output('y', select(mask, x, 0, { name: 'relu' }));
    const plan = partition(g);
    expect(plan.hostOps).toEqual([]);
    expect(plan.kernels.length).toBe(1);
    for (const node of ['mask', 'dx', 'relu']) expect(placementOf(plan, node).device).toBe('ane');
    const program = plan.programs[0]!.program;
    // fp16 in, fp16 out: the bool lives only inside the program.
    expect([...program.inputs, ...program.outputs].map((s) => s.dtype)).toEqual(['fp16', 'fp16']);
    const ast = parseProgram(program.mil);
    const body = ast.functions[0]!.body;
    const ops = body.map((s) => s.op);
    expect(ops).toContain('greater');
    expect(ops.filter((op) => op === 'select').length).toBe(2);
    const greaterOut = body.find((s) => s.op === 'greater')!.outputs[0]!;
    expect(greaterOut.type.dtype).toBe('bool');
  });

  it('a comparison read by selects in two kernels is recomputed in each (the ReLU mask of forward and backward)', () => {
    // forward h -> relu -> an RMSNorm on the host -> y; backward from y through the same mask.
    const g = new Graph();
    const x = g.input('x', [32, 64]);
    const w1 = g.param('w1', [32, 32]);
    const w2 = g.param('w2', [32, 32]);
    const gain = g.param('gain', [32], { trainable: false });
    const h = matmul(w1, x, { name: 'h' });
    const mask = greater(h, 0, { name: 'mask' });
    const y = g.output(
      'y',
      matmul(w2, rmsNorm(select(mask, h, 0, { name: 'relu' }), gain, { name: 'norm' })),
    );
    const dh = select(mask, matmul(w2, y, { transposeX: true }), 0, { name: 'dh' });
    g.output('dx', matmul(w1, dh, { transposeX: true }));
    const plan = partition(g);
    expect(plan.hostOps.map((op) => op.kind)).toEqual(['rmsnorm']);
    expect(plan.kernels.length).toBe(2);
    const withMask = plan.kernels.filter((k) => k.nodes.includes(mask));
    expect(withMask.length).toBe(2);
    // The first kernel returns h (not the bool) for the second to recompute the mask from.
    const first = plan.kernels[0]!;
    const returned = first.outputs.flatMap((port) => port.segments.map((seg) => seg.source));
    expect(returned).toContain('h');
    expect(returned).not.toContain('mask');
    for (const program of plan.programs) {
      expect([...program.program.inputs, ...program.program.outputs].every((s) => s.dtype === 'fp16')).toBe(
        true,
      );
      expect(parseProgram(program.program.mil).functions[0]!.body.some((s) => s.op === 'greater')).toBe(true);
    }
    const placement = placementOf(plan, 'mask');
    expect(placement.device).toBe('ane');
    expect(placement.reason).toMatch(/runs inside every kernel that selects with it/);
    for (const node of ['relu', 'dh']) expect(placementOf(plan, node).device).toBe('ane');
  });

  it('a comparison that is a graph output runs on the host, and so do its selects (dtype-bool)', () => {
    const g = new Graph();
    const x = g.input('x', [64, 32]);
    const mask = less(x, 0, { name: 'mask' });
    g.output('mask', mask);
    g.output('y', select(mask, 0, x, { name: 'clipped' }));
    g.output('z', mul(x, 2, { name: 'double' }));
    const plan = partition(g);
    const mask0 = placementOf(plan, 'mask');
    expect(mask0.device).toBe('host');
    expect(mask0.ruleId).toBe('dtype-bool');
    expect(mask0.reason).toMatch(/graph output/);
    const clipped = placementOf(plan, 'clipped');
    expect(clipped.device).toBe('host');
    expect(clipped.ruleId).toBe('dtype-bool');
    expect(clipped.reason).toMatch(/its condition 'mask' runs on the host/);
    expect(placementOf(plan, 'double').device).toBe('ane');
  });

  it('a comparison read by anything but a select runs on the host (a cast of a bool is no ANE form)', () => {
    const g = new Graph();
    const x = g.input('x', [64, 32]);
    const mask = equal(x, 1, { name: 'mask' });
    g.output('m', cast(mask, 'fp16', { name: 'as_fp16' }));
    const plan = partition(g);
    const placement = placementOf(plan, 'mask');
    expect(placement.device).toBe('host');
    expect(placement.ruleId).toBe('dtype-bool');
    expect(placement.reason).toMatch(/read by cast 'as_fp16'/);
    expect(placementOf(plan, 'as_fp16').device).toBe('host');
  });

  it('fp32 comparisons and selects run on the host (the ANE computes in fp16)', () => {
    const g = new Graph();
    const x = g.input('x', [64, 32], { dtype: 'fp32' });
    const h = g.input('h', [64, 32]);
    g.output('a', select(greater(x, 0, { name: 'wide' }), 1, 0, { name: 'a' }));
    g.output('b', select(greater(h, 0, { name: 'narrow' }), cast(h, 'fp32'), 0, { name: 'b' }));
    const plan = partition(g);
    expect(placementOf(plan, 'wide')).toMatchObject({ device: 'host', ruleId: 'dtype-compute' });
    expect(placementOf(plan, 'wide').reason).toMatch(/fp32 comparison/);
    expect(placementOf(plan, 'narrow')).toMatchObject({ device: 'host', ruleId: 'dtype-bool' });
    expect(placementOf(plan, 'narrow').reason).toMatch(/its select 'b' picks fp32 values/);
    expect(placementOf(plan, 'b')).toMatchObject({ device: 'host', ruleId: 'dtype-compute' });
    expect(placementOf(plan, 'b').reason).toMatch(/fp32 arithmetic/);
  });

  it('integer comparisons and selects of a bool constant run on the host', () => {
    const g = new Graph();
    const tokens = g.input('tokens', [16], { dtype: 'int32' });
    const x = g.input('x', [16, 32]);
    const keep = g.constant(new Uint8Array(16 * 32).fill(1), [16, 32], { dtype: 'bool', name: 'keep' });
    g.output('ignored', select(equal(tokens, -100, { name: 'is_ignored' }), 0, 1, { name: 'weight' }));
    g.output('kept', select(keep, x, 0, { name: 'kept' }));
    const plan = partition(g);
    expect(placementOf(plan, 'is_ignored')).toMatchObject({ device: 'host', ruleId: 'dtype-compute' });
    expect(placementOf(plan, 'weight')).toMatchObject({ device: 'host', ruleId: 'dtype-bool' });
    const kept = placementOf(plan, 'kept');
    expect(kept).toMatchObject({ device: 'host', ruleId: 'dtype-bool' });
    expect(kept.reason).toMatch(/condition 'keep' is a bool constant/);
  });

  it('forcing a bool across a kernel boundary onto the ANE is a ConstraintError naming dtype-bool', () => {
    const g = new Graph();
    const x = g.input('x', [64, 32]);
    const mask = greater(x, 0, { name: 'mask' });
    g.output('mask', mask);
    let error: unknown;
    try {
      partition(g, { placement: { mask: 'ane' } });
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(ConstraintError);
    expect((error as ConstraintError).ruleId).toBe('dtype-bool');
    expect((error as ConstraintError).message).toMatch(/bool 'mask' would be returned by the kernel/);
  });

  it('lowering a kernel that reads a bool names the select that reads it', () => {
    const g = new Graph();
    const x = g.input('x', [64, 32]);
    const mask = greater(x, 0, { name: 'mask' });
    const picked = select(mask, x, 0, { name: 'picked' });
    let error: unknown;
    try {
      lowerKernel({ nodes: [picked], outputs: [picked] });
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(ConstraintError);
    expect((error as ConstraintError).ruleId).toBe('dtype-bool');
    expect((error as ConstraintError).node).toBe('picked');
  });

  it('lowering a select whose condition is a bool constant is a ConstraintError (only comparisons make bools)', () => {
    const g = new Graph();
    const x = g.input('x', [64, 32]);
    const keep = g.constant(new Uint8Array(64 * 32), [64, 32], { dtype: 'bool', name: 'keep' });
    g.output('y', select(keep, x, 0, { name: 'kept' }));
    let error: unknown;
    try {
      lowerGraph(g);
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(ConstraintError);
    expect((error as ConstraintError).ruleId).toBe('dtype-bool');
    expect((error as ConstraintError).message).toMatch(/select's condition 'keep' is a bool constant/);
  });

  it('log lowers with its epsilon spelled out as an fp16 constant', () => {
    const g = new Graph();
    const x = g.input('x', [64, 32]);
    g.output('y', log(add(x, 2), { epsilon: 1e-4, name: 'logx' }));
    const kernel = lowerGraph(g);
    const body = parseProgram(kernel.program.mil).functions[0]!.body;
    const logOp = body.find((s) => s.op === 'log')!;
    expect([...logOp.args.keys()].sort()).toEqual(['epsilon', 'x']);
    const eps = logOp.args.get('epsilon')!;
    const epsConst = body.find((s) => s.outputs[0]!.name === (eps as { name: string }).name)!;
    expect(epsConst.attributes.get('val')).toMatchObject({ kind: 'scalar', value: 0.00010001659393310547 });
  });
});
