import { describe, expect, it } from 'vitest';
import { linear, swigluParts } from '../composites';
import { ConstraintError } from '../graph/errors';
import { Graph } from '../graph/graph';
import { parseProgram } from '../mil/parse';
import { validateProgram } from '../mil/validate';
import { add, matmul, mul, relu, reshape } from '../ops/primitives';
import { partition } from '../partition/partition';
import { checkKernel, lowerGraph, lowerKernel } from './kernel';
import { physicalAxis, physicalShape } from './layout';
import { packInput, unpackOutput } from './staging';

describe('the channels-first layout', () => {
  it('maps every rank to [N, C, H, W] by inserting size-1 axes only', () => {
    expect(physicalShape([768])).toEqual([1, 768, 1, 1]);
    expect(physicalShape([768, 256])).toEqual([1, 768, 1, 256]);
    expect(physicalShape([768, 256], 'mm')).toEqual([1, 1, 768, 256]);
    expect(physicalShape([12, 256, 64])).toEqual([1, 12, 256, 64]);
    expect(physicalShape([1, 64, 16, 16])).toEqual([1, 64, 16, 16]);
    expect(physicalAxis(0, 2)).toBe(1);
    expect(physicalAxis(1, 2)).toBe(3);
    expect(physicalAxis(0, 2, 'mm')).toBe(2);
    expect(physicalAxis(2, 3)).toBe(3);
  });
});

describe('kernel I/O', () => {
  it('packs trainable weights next to the activations along the spatial axis of one input', () => {
    const g = new Graph();
    const x = g.input('x', [64, 32]);
    const res = g.input('res', [64, 32]);
    const ffn = swigluParts(x, g.param('w1', [128, 64]), g.param('w3', [128, 64]), g.param('w2', [64, 128]));
    g.output('y', add(res, ffn.y));
    const kernel = lowerGraph(g);
    expect(kernel.program.inputs).toEqual([{ name: 'x', dtype: 'fp16', shape: [1, 64, 1, 448] }]);
    expect(
      kernel.inputs[0]!.segments.map((s) => [s.source, s.role, s.offset, s.extent, s.transposed]),
    ).toEqual([
      ['x', 'activation', 0, 32, false],
      ['res', 'activation', 32, 32, false],
      ['w1', 'weight', 64, 128, true],
      ['w3', 'weight', 192, 128, true],
      ['w2', 'weight', 320, 128, false],
    ]);
    // No weight is baked into the program: updates never recompile.
    expect(kernel.program.weights.size).toBe(0);
  });

  it('packs activations that share the sequence length along channels, and concatenates outputs', () => {
    const g = new Graph();
    const p = g.input('p', [256, 64]);
    const dp = g.input('dp', [128, 64]);
    g.output('a', mul(p, 2));
    g.output('b', mul(dp, 3));
    const kernel = lowerGraph(g);
    expect(kernel.program.inputs[0]!.shape).toEqual([1, 384, 1, 64]);
    expect(kernel.inputs[0]!.segments.map((s) => [s.source, s.axis, s.offset, s.extent])).toEqual([
      ['p', 'channel', 0, 256],
      ['dp', 'channel', 256, 128],
    ]);
    expect(kernel.program.outputs).toEqual([{ name: 'y', dtype: 'fp16', shape: [1, 384, 1, 64] }]);
    expect(kernel.program.mil).toContain('concat(axis = axis, interleave = bF, values = (');
  });

  it('stages and unstages packed buffers (packInput / unpackOutput)', () => {
    const g = new Graph();
    const x = g.input('x', [2, 3]);
    g.output('y', linear(x, g.param('w', [4, 2])));
    const kernel = lowerGraph(g);
    const port = kernel.inputs[0]!;
    expect(port.logicalShape).toEqual([2, 7]);
    const packed = packInput(port, (source) =>
      source === 'x' ? [1, 2, 3, 4, 5, 6] : [10, 11, 12, 13, 14, 15, 16, 17],
    );
    // Row c: x[c, :] then Wᵀ[c, :] = W[:, c].
    expect(Array.from(packed)).toEqual([1, 2, 3, 10, 12, 14, 16, 4, 5, 6, 11, 13, 15, 17]);
    // unpackOutput is packInput's inverse: every value comes back in the graph's layout (W as [out, in]).
    const split = unpackOutput(port, packed);
    expect(Array.from(split.get('x')!)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(Array.from(split.get('w')!)).toEqual([10, 11, 12, 13, 14, 15, 16, 17]);
    // Wrong sizes are refused, naming the value, its shape and the port.
    expect(() => packInput(port, (source) => (source === 'x' ? [1, 2, 3, 4, 5, 6] : [1, 2, 3]))).toThrow(
      "packInput 'x': 'w' needs 8 values (shape [4, 2], row-major, as the graph declares it), got 3",
    );
    expect(() => unpackOutput(port, packed.subarray(1))).toThrow(
      "unpackOutput 'x': the port holds 14 values ([2, 7]), got 13",
    );
  });

  it('gives each value its own parameter with io: separate', () => {
    const g = new Graph();
    const x = g.input('x', [64, 32]);
    g.output('mm_y', linear(x, g.param('w', [96, 64])));
    const kernel = lowerGraph(g, { io: 'separate' });
    expect(kernel.program.inputs).toEqual([
      { name: 'x', dtype: 'fp16', shape: [1, 64, 1, 32] },
      // The weight's port holds it as the graph declares it, [out, in]: never a hidden Wᵀ.
      { name: 'w', dtype: 'fp16', shape: [1, 96, 1, 64] },
    ]);
    expect(kernel.program.outputs).toEqual([{ name: 'mm_y', dtype: 'fp16', shape: [1, 96, 1, 32] }]);
  });
});

describe('a graph whose values do not pack into one input', () => {
  function mlp(): Graph {
    const g = new Graph();
    const x = g.input('x', [64, 32]);
    const h = relu(linear(x, g.param('w1', [128, 64])));
    g.output('y', linear(h, g.param('w2', [10, 128])));
    return g;
  }

  it('fails with a fix that names what works, with the exact calls', () => {
    let error: unknown;
    try {
      lowerGraph(mlp());
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(ConstraintError);
    const message = (error as Error).message;
    expect(message).toContain("trainable weight 'w2' [10, 128] shares no axis");
    expect(message).toContain('Fix: cut the graph into kernels that each pack, with `partition(graph)`');
    expect(message).toContain("`lowerGraph(graph, { io: 'separate' })`");
  });

  it('and both of the named calls work on it', () => {
    expect(lowerGraph(mlp(), { io: 'separate' }).program.inputs.map((s) => s.name)).toEqual([
      'x',
      'w1',
      'w2',
    ]);
    expect(partition(mlp()).kernels.length).toBeGreaterThan(0);
  });
});

describe('emission', () => {
  function sample(): Graph {
    const g = new Graph();
    const x = g.input('x', [64, 32]);
    const h = linear(x, g.param('w1', [64, 64]));
    const frozen = g.param('w2', [64, 64], { trainable: false });
    g.output('y', add(linear(h, frozen), x));
    return g;
  }

  it('hoists every op parameter into a named const, and names every statement uniquely', () => {
    const kernel = lowerGraph(sample());
    const ast = parseProgram(kernel.program.mil);
    const body = ast.functions[0]!.body;
    const names = body.map((s) => s.attributes.get('name'));
    expect(new Set(names.map((n) => (n?.kind === 'scalar' ? n.value : undefined))).size).toBe(body.length);
    for (const statement of body) {
      for (const [, arg] of statement.args) expect(['ref', 'tuple']).toContain(arg.kind);
    }
  });

  it('prints program(1.3) / <ios18> with the fixed buildInfo by default, or a given buildInfo', () => {
    const text = lowerGraph(sample()).program.mil;
    expect(text.split('\n').slice(0, 2)).toEqual([
      'program(1.3)',
      '[buildInfo = dict<string, string>({{"coremlc-component-MIL", "3510.2.1"}, {"coremlc-version", "3505.4.1"}, {"coremltools-component-milinternal", ""}, {"coremltools-version", "9.0"}})]',
    ]);
    expect(text).toContain('func main<ios18>(');
    const custom = lowerGraph(sample(), { buildInfo: [['coremlc-component-MIL', '3520.4.1']] }).program.mil;
    expect(custom).toContain('[buildInfo = dict<string, string>({{"coremlc-component-MIL", "3520.4.1"}})]');
  });

  it('prints the program(1.0) / <ios16> dialect for older chips, with verbose scalars', () => {
    const kernel = lowerGraph(sample(), { dialect: 'ios16', chip: 'M1' });
    const text = kernel.program.mil;
    expect(
      text.startsWith(
        'program(1.0)\n[buildInfo = dict<tensor<string, []>, tensor<string, []>>({{"coremlc-version", "3505.4.1"}})]',
      ),
    ).toBe(true);
    expect(text).toContain('func main<ios16>(');
    expect(text).toContain('name = tensor<string, []>(');
    expect(text).toContain('tensor<bool, []> bF = const()');
    expect(text).not.toMatch(/= string\(/);
    validateProgram(parseProgram(text), { weights: kernel.program.weights });
  });

  it('is deterministic and writes placeholder zeros for frozen weights without data', () => {
    const first = lowerGraph(sample());
    const second = lowerGraph(sample());
    expect(second.program.mil).toBe(first.program.mil);
    expect(second.hash).toBe(first.hash);
    expect(first.placeholders).toEqual(['w2']);
    expect(first.program.weights.get('@model_path/weights/w2.bin')!.length).toBe(128 + 64 * 64 * 2);
  });

  it('reports FLOPs and lowers an explicit node set (lowerKernel)', () => {
    const g = new Graph();
    const x = g.input('x', [64, 32]);
    const y = linear(x, g.param('w', [96, 64]));
    const z = mul(y, 2);
    const kernel = lowerKernel({ nodes: [y, z], outputs: [z], name: 'k' });
    expect(kernel.name).toBe('k');
    expect(kernel.flops).toBe(2 * 96 * 64 * 32 + 96 * 32);
  });

  it('collects every violation with checkKernel instead of throwing', () => {
    const g = new Graph();
    const x = g.input('x', [8, 20000]);
    g.output('y', matmul(reshape(x, [8, 20000]), g.param('w', [20000, 8], { trainable: false })));
    const { errors } = checkKernel({ nodes: g.nodes, outputs: [g.outputs[0]!.tensor] }, { chip: 'M1' });
    expect(errors.map((e) => e.ruleId)).toContain('dim-spatial');
  });
});

describe('lowering bugs found by the autograd work', () => {
  it('names separate outputs as the MIL returns them (two unnamed muls; an op name is no value name)', () => {
    const g = new Graph();
    const x = g.input('x', [64, 32]);
    const a = mul(x, 2);
    const b = mul(x, 3);
    const kernel = lowerKernel({ nodes: [a, b], outputs: [a, b] }, { io: 'separate' });
    const program = parseProgram(kernel.program.mil);
    const returned = program.functions[0]!.returns.map((r) => r.name);
    // Before: the MIL returned (mul_1, mul_1_1) while the Program's outputs said mul, mul_1.
    expect(kernel.program.outputs.map((o) => o.name)).toEqual(returned);
    expect(new Set(returned).size).toBe(2);
    expect(returned).not.toContain('mul');
  });

  it('keeps an output distinct from an input of the same name in separate mode', () => {
    const g = new Graph();
    const x = g.input('v', [64, 32]);
    g.output('v_out', mul(x, 2, { name: 'v' }));
    const kernel = lowerKernel(
      { nodes: [g.outputs[0]!.tensor], outputs: [g.outputs[0]!.tensor], outputNames: ['v'] },
      { io: 'separate' },
    );
    const fn = parseProgram(kernel.program.mil).functions[0]!;
    expect(kernel.program.inputs.map((i) => i.name)).toEqual(fn.params.map((p) => p.name));
    expect(kernel.program.outputs.map((o) => o.name)).toEqual(fn.returns.map((r) => r.name));
  });

  it('lowers an op of one-element constants read by a kernel (declared [1, 1], not a scalar)', () => {
    const g = new Graph();
    const x = g.input('x', [64, 32]);
    const half = mul(g.constant([1], [1, 1]), 0.5, { name: 'half' });
    g.output('y', mul(x, half, { name: 'y' }));
    // Before: "declared type of 'half' does not match the op's result" (an internal error).
    const plan = partition(g);
    expect(plan.kernels.length).toBe(1);
    const text = plan.programs[0]!.program.mil;
    validateProgram(parseProgram(text), { weights: plan.programs[0]!.program.weights });
    expect(text).toMatch(/tensor<fp16, \[1, 1, 1, 1\]> half/);
  });
});
