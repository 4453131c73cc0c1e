/**
 * Golden files: the MIL printed for a Llama block forward (MHA and GQA) at small sizes, and the
 * plan that produced it. A change to the lowering that changes the text fails here; when the change
 * is intended, regenerate with `UPDATE_GOLDEN=1 npx vitest run src/emit/golden` and review the diff.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Graph } from '../graph/graph';
import { parseProgram } from '../mil/parse';
import { validateProgram } from '../mil/validate';
import { add, greater, less, log, maximum, minimum, mul, select } from '../ops/primitives';
import { partition } from '../partition/partition';
import { type LlamaConfig, llamaGraph } from '../testing/models.test-helper';

const GOLDEN_DIR = join(import.meta.dirname, '__golden__');
const UPDATE = process.env.UPDATE_GOLDEN === '1';

function golden(file: string, actual: string): void {
  const path = join(GOLDEN_DIR, file);
  if (UPDATE) writeFileSync(path, actual);
  expect(existsSync(path), `${file} is missing: run UPDATE_GOLDEN=1 npx vitest run src/emit/golden`).toBe(
    true,
  );
  expect(actual, `${file} differs: if intended, run UPDATE_GOLDEN=1 npx vitest run src/emit/golden`).toBe(
    readFileSync(path, 'utf8'),
  );
}

const BLOCKS: [string, LlamaConfig][] = [
  ['llama-block-mha', { dim: 64, heads: 4, hidden: 128, seq: 32, layers: 2 }],
  [
    'llama-block-gqa',
    { dim: 64, heads: 4, kvHeads: 2, hidden: 128, seq: 32, layers: 2, convention: 'rotate-half' },
  ],
];

describe('golden MIL for a Llama block forward', () => {
  for (const [name, config] of BLOCKS) {
    it(`${name}: the printed programs and the plan are pinned`, () => {
      const plan = partition(llamaGraph(config).graph);
      // Two layers, two programs: attention (+ residual) and SwiGLU (+ residual), shared by both layers.
      expect(plan.programs.length).toBe(2);
      expect(plan.kernels.length).toBe(4);
      plan.programs.forEach((program, i) => {
        validateProgram(parseProgram(program.program.mil), { weights: program.program.weights });
        golden(`${name}.p${i}.mil`, program.program.mil);
      });
      golden(`${name}.plan.txt`, `${plan.report()}\n`);
    });
  }

  it('prints the same text every time (deterministic names, consts and blobs)', () => {
    const first = partition(llamaGraph(BLOCKS[1]![1]).graph);
    const second = partition(llamaGraph(BLOCKS[1]![1]).graph);
    expect(second.programs.map((p) => p.program.mil)).toEqual(first.programs.map((p) => p.program.mil));
    expect(second.programs.map((p) => p.hash)).toEqual(first.programs.map((p) => p.hash));
  });
});

describe('golden MIL for comparisons, select and log', () => {
  it('a ReLU mask (greater -> select, bool only inside), clamps and a log with its epsilon are pinned', () => {
    const g = new Graph();
    const x = g.input('x', [64, 32]);
    const dy = g.input('dy', [64, 32]);
    const mask = greater(x, 0, { name: 'mask' });
    g.output('y', select(mask, x, 0, { name: 'relu' }));
    g.output('dx', select(mask, dy, 0, { name: 'relu_dx' }));
    g.output('neg', select(less(x, dy, { name: 'lt' }), 1, 0, { name: 'indicator' }));
    g.output('clamped', maximum(minimum(x, 1, { name: 'upper' }), -1, { name: 'clamped' }));
    g.output('logsq', log(add(mul(x, x), 1), { epsilon: 1e-4, name: 'logsq' }));
    const plan = partition(g);
    expect(plan.programs.length).toBe(1);
    expect(plan.hostOps).toEqual([]);
    const program = plan.programs[0]!.program;
    validateProgram(parseProgram(program.mil), { weights: program.weights });
    golden('compare-select-log.p0.mil', program.mil);
    golden('compare-select-log.plan.txt', `${plan.report()}\n`);
  });
});
