/**
 * `lowerGraph(g, { io: 'separate' })` as a user drives it: each port's buffer is written with the
 * very array the graph was given (a linear weight in PyTorch's `[out, in]` layout), without
 * `packInput`, and the outputs come back under the names given to `g.output`.
 */
import { evaluate, Graph, linear, lowerGraph, packInput, partition, unpackOutput } from 'ane-ir';
import { describe, expect, it } from 'vitest';
import { executePlan, normals, runOnSim, worstRatio } from './support';

const [IN, OUT, SEQ] = [64, 96, 32];

/** y[o, s] = sum_i W[o, i] x[i, s], in float64: the hand-computed reference. */
function linearReference(w: Float32Array, x: Float32Array): Float64Array {
  const y = new Float64Array(OUT * SEQ);
  for (let o = 0; o < OUT; o++)
    for (let s = 0; s < SEQ; s++) {
      let sum = 0;
      for (let i = 0; i < IN; i++) sum += w[o * IN + i]! * x[i * SEQ + s]!;
      y[o * SEQ + s] = sum;
    }
  return y;
}

function linearGraph() {
  const g = new Graph();
  const x = g.input('x', [IN, SEQ]);
  const w = g.param('w', [OUT, IN]); // PyTorch layout [out, in], non-square
  g.output('y', linear(x, w));
  return g;
}

describe("io: 'separate' ports take the graph's layout", () => {
  const x = normals(IN * SEQ, 1, 1);
  const w = normals(OUT * IN, 1 / 8, 2); // [out, in], row o = W[o, :]

  it('a PyTorch-layout weight written straight into its port gives the right answer', () => {
    const kernel = lowerGraph(linearGraph(), { io: 'separate' });
    // The weight port is declared as the graph declares the weight: [out, in] -> [1, OUT, 1, IN].
    const weightSpec = kernel.program.inputs.find((s) => s.name === 'w')!;
    expect(weightSpec.shape).toEqual([1, OUT, 1, IN]);
    expect(kernel.inputs.every((port) => port.segments.every((s) => !s.transposed))).toBe(true);
    // Feed the user's arrays as they are, in the program's input order.
    const byName: Record<string, Float32Array> = { x, w };
    const [y] = runOnSim(
      kernel.program,
      kernel.program.inputs.map((s) => byName[s.name]!),
    );
    const expected = linearReference(w, x);
    expect(worstRatio(y!, expected, 2e-2, 2e-2)).toBeLessThanOrEqual(1);
    // The same through the float64 interpreter.
    const g = linearGraph();
    const [evaluated] = evaluate(
      g.outputs.map((o) => o.tensor),
      { x, w },
    );
    expect(worstRatio(y!, evaluated!, 2e-2, 2e-2)).toBeLessThanOrEqual(1);
  });

  it('packInput on a separate port is the identity on the weight (no hidden transpose)', () => {
    const kernel = lowerGraph(linearGraph(), { io: 'separate' });
    const port = kernel.inputs.find((p) => p.spec.name === 'w')!;
    expect(Array.from(packInput(port, () => w))).toEqual(Array.from(w));
  });
});

describe('outputs keep the names the user gave', () => {
  const x = normals(IN * SEQ, 1, 3);
  const w = normals(OUT * IN, 1 / 8, 4);

  for (const io of ['packed', 'separate'] as const) {
    it(`lowerGraph (io: '${io}'): unpackOutput returns 'y', the program returns 'y'`, () => {
      const kernel = lowerGraph(linearGraph(), { io });
      expect(kernel.program.outputs.map((s) => s.name)).toEqual(['y']);
      expect(kernel.outputs[0]!.segments.map((s) => s.source)).toEqual(['y']);
      const inputs = kernel.inputs.map((port) => packInput(port, (source) => ({ x, w })[source]!));
      const [raw] = runOnSim(kernel.program, inputs);
      const values = unpackOutput(kernel.outputs[0]!, raw!);
      expect([...values.keys()]).toEqual(['y']);
      expect(worstRatio(values.get('y')!, linearReference(w, x), 2e-2, 2e-2)).toBeLessThanOrEqual(1);
    });
  }

  it("partition: the plan's sources name the graph output 'y'", () => {
    const plan = partition(linearGraph());
    const returned = plan.kernels.flatMap((k) => k.outputs.flatMap((p) => p.segments.map((s) => s.source)));
    expect(returned).toEqual(['y']);
    expect(plan.report()).toContain('returns y');
    const values = executePlan(plan, { x, w });
    expect(worstRatio(values.get('y')!, linearReference(w, x), 2e-2, 2e-2)).toBeLessThanOrEqual(1);
  });
});

describe('one value returned under two names', () => {
  it('comes back under both names', () => {
    const g = new Graph();
    const x = g.input('x', [IN, SEQ]);
    const y = linear(x, g.param('w', [OUT, IN]));
    g.output('logits', y);
    g.output('features', y);
    for (const io of ['packed', 'separate'] as const) {
      const kernel = lowerGraph(g, { io });
      const sources = kernel.outputs.flatMap((p) => p.segments.map((s) => s.source));
      expect(sources).toEqual(['logits', 'features']);
    }
  });
});
