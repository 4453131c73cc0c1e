import { parseProgram } from 'ane-ir/mil';
import { describe, expect, it } from 'vitest';
import { openDevice } from '../device/device';
import { formatBench, runBench, STORIES15M_LAYER, storiesLayerProgram } from './bench';

describe('ane bench', () => {
  it('builds the Stories15M layer: one input, one output, ten weight blobs, the work counted by hand', () => {
    const { program, flops, input } = storiesLayerProgram();
    const { dim, hidden, seq } = STORIES15M_LAYER;
    expect(program.inputs).toEqual([{ name: 'x', dtype: 'fp16', shape: [1, dim, 1, seq] }]);
    expect(program.outputs).toEqual([{ name: 'out', dtype: 'fp16', shape: [1, dim, 1, seq] }]);
    expect([...program.weights.keys()].sort()).toEqual(
      ['W1', 'W2', 'W3', 'Wk', 'Wo', 'Wq', 'Wv', 'cm', 'g1', 'g2']
        .map((n) => `@model_path/weights/${n}.bin`)
        .sort(),
    );
    expect(input.length).toBe(dim * seq);
    // Q, K, V, O: 4 dim×dim convs; W1, W3: hidden×dim; W2: dim×hidden; scores and P·V: seq×seq×dim each.
    const multiplyAdds = seq * (4 * dim * dim + 2 * hidden * dim + dim * hidden) + 2 * seq * seq * dim;
    expect(flops).toBe(2 * multiplyAdds);
    expect(parseProgram(program.mil).functions[0]!.name).toBe('main');
  });

  it('times a small layer on the simulator and reports GFLOP/s', async () => {
    using device = openDevice({ backend: 'sim' });
    const result = await runBench(device, {
      iterations: 2,
      warmup: 0,
      config: { dim: 64, heads: 2, hidden: 128, seq: 32 },
    });
    expect(result).toMatchObject({ backend: 'sim', iterations: 2, benchmark: 'stories15m-layer-forward' });
    expect(result.runMs.min).toBeLessThanOrEqual(result.runMs.median);
    expect(result.gflops).toBeCloseTo(result.flops / (result.runMs.median * 1e6), 10);
    expect(formatBench(result)).toMatch(/GFLOP\/s/);
    await expect(runBench(device, { iterations: 0 })).rejects.toThrow(RangeError);
  });
});
