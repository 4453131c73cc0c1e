/**
 * `device.load(plan)` end to end on the simulator: Llama stacks (MHA and GQA, 1 and 4 layers,
 * batch 1 and 3) against the float64 interpreter, programs compiled once, `write` equal to a fresh
 * load, host ops on registered kernels, and what the executable does with bad input.
 */
import { CompileBudgetError, DeviceError, openDevice, PlanError, PlanFeedError } from 'ane-bridge';
import { evaluate, Graph, layerNorm, linear, partition, rmsNorm } from 'ane-ir';
import { describe, expect, it } from 'vitest';
import { llamaGraph } from '../../packages/ane-ir/src/testing/models.test-helper';
import { BASE, build, type Config } from './llama-model';
import { normals, worstRatio } from './support';

const ATOL = 0.03;
const RTOL = 0.03;

/** `batch` sequences of x back to back, and the float64 reference output of each. */
function batchOf(config: Config, batch: number) {
  const { graph, feeds, out } = build(config);
  const xs = Array.from({ length: batch }, (_, b) => normals(config.dim * config.seq, 1, 100 + b));
  const x = new Float32Array(batch * config.dim * config.seq);
  for (const [b, values] of xs.entries()) x.set(values, b * values.length);
  const expected = xs.map((values) => evaluate([out], { ...feeds, x: values })[0]!);
  return { graph, feeds: { ...feeds, x }, expected };
}

describe('Llama stacks through device.load match the float64 interpreter', () => {
  const variants: [string, Partial<Config>][] = [
    ['MHA', {}],
    ['GQA 4:2', { kvHeads: 2, convention: 'rotate-half' }],
  ];
  for (const [label, variant] of variants)
    for (const layers of [1, 4])
      for (const batch of [1, 3]) {
        it(`${label}, ${layers} layer(s), batch ${batch}`, async () => {
          const config: Config = { ...BASE, ...variant, layers };
          const { graph, feeds, expected } = batchOf(config, batch);
          const plan = partition(graph);
          const device = openDevice({ backend: 'sim' });
          try {
            const exe = device.load(plan, { batch });
            // Each distinct program compiled exactly once, whatever the number of layers.
            expect(device.compileBudget.used).toBe(plan.programs.length);
            const outputs = await exe.run(feeds);
            const out = outputs.out as Float32Array;
            expect(out.length).toBe(batch * config.dim * config.seq);
            const size = config.dim * config.seq;
            expected.forEach((reference, b) => {
              const worst = worstRatio(out.subarray(b * size, (b + 1) * size), reference, ATOL, RTOL);
              expect(worst, `sequence ${b}`).toBeLessThanOrEqual(1);
            });
            // A second run compiles nothing and gives the same bits.
            const again = exe.runSync(undefined, { copy: true });
            expect(device.compileBudget.used).toBe(plan.programs.length);
            expect(Buffer.from((again.out as Float32Array).buffer).equals(Buffer.from(out.buffer))).toBe(
              true,
            );
            if (batch > 1) expect(exe.report()).toContain(`Batch: ${batch} sequences per run`);
          } finally {
            device.dispose();
          }
        });
      }

  it('a 4-layer forward compiles as many programs as a 1-layer one, and a second load compiles nothing', () => {
    const device = openDevice({ backend: 'sim' });
    try {
      const one = partition(build({ ...BASE, layers: 1 }).graph);
      const four = partition(build({ ...BASE, layers: 4 }).graph);
      expect(four.kernels.length).toBe(4 * one.kernels.length);
      device.load(four);
      expect(device.compileBudget.used).toBe(four.programs.length);
      device.load(four);
      device.load(one); // the same programs: cache hits
      expect(device.compileBudget.used).toBe(four.programs.length);
    } finally {
      device.dispose();
    }
  });
});

describe('exe.write', () => {
  it('changing one weight gives exactly what a fresh load with that weight gives', () => {
    const config: Config = { ...BASE, layers: 2, kvHeads: 2 };
    const { graph, feeds } = build(config);
    const plan = partition(graph);
    const device = openDevice({ backend: 'sim' });
    try {
      const exe = device.load(plan);
      const before = exe.runSync(feeds, { copy: true }).out!;
      const changed = normals(feeds['layers.1.wq']!.length, 0.2, 77);
      exe.write('layers.1.wq', changed);
      const after = exe.runSync().out!;
      const fresh = device.load(plan).runSync({ ...feeds, 'layers.1.wq': changed }).out!;
      expect(Buffer.from(after.buffer).equals(Buffer.from(fresh.buffer))).toBe(true);
      expect(Buffer.from(after.buffer).equals(Buffer.from(before.buffer))).toBe(false);
      // Writing the old value back restores the old output bit for bit.
      exe.write('layers.1.wq', feeds['layers.1.wq']!);
      expect(Buffer.from(exe.runSync().out!.buffer).equals(Buffer.from(before.buffer))).toBe(true);
    } finally {
      device.dispose();
    }
  });

  it('takes fp16 bit patterns for an fp16 weight, equal to the values they encode', () => {
    const { graph, feeds } = build({ ...BASE, layers: 1 });
    const plan = partition(graph);
    const device = openDevice({ backend: 'sim' });
    try {
      const exe = device.load(plan);
      const byValues = exe.runSync(feeds, { copy: true }).out!;
      const w = feeds['layers.0.w2']!; // already fp16-representable
      const bits = new Uint16Array(w.length);
      const view = new DataView(new ArrayBuffer(2));
      // Encode with the platform-independent definition: fp16 of an fp16-representable value is exact.
      for (let i = 0; i < w.length; i++) {
        view.setUint16(0, fp16Bits(w[i]!), true);
        bits[i] = view.getUint16(0, true);
      }
      exe.write('layers.0.w2', bits);
      expect(Buffer.from(exe.runSync().out!.buffer).equals(Buffer.from(byValues.buffer))).toBe(true);
    } finally {
      device.dispose();
    }
  });
});

/** fp16 bits of a value that is exactly representable in fp16 (normal or subnormal). */
function fp16Bits(value: number): number {
  const sign = value < 0 || Object.is(value, -0) ? 0x8000 : 0;
  const a = Math.abs(value);
  if (a === 0) return sign;
  if (a < 2 ** -14) return sign | Math.round(a / 2 ** -24);
  const exponent = Math.floor(Math.log2(a));
  const mantissa = Math.round((a / 2 ** exponent - 1) * 1024);
  return sign | ((exponent + 15) << 10) | mantissa;
}

describe('host ops run on registered kernels', () => {
  it('a Stories15M forward runs every host op on a native host kernel (from the profile)', async () => {
    const { graph } = llamaGraph({ dim: 288, heads: 6, hidden: 768, seq: 256, layers: 6, vocab: 32000 });
    const plan = partition(graph);
    const device = openDevice({ backend: 'sim' });
    try {
      const exe = device.load(plan);
      expect(exe.slowHostOps).toEqual([]);
      let seed = 1;
      for (const source of exe.sources) {
        if (source.role !== 'param') continue;
        const values = normals(source.length, 0.02, seed++);
        exe.write(source.name, source.shape.length === 1 ? values.map((v) => 1 + v) : values);
      }
      const tokens = Int32Array.from({ length: 256 }, (_, i) => (i * 7919) % 32000);
      const { logits } = await exe.run({ tokens });
      expect(logits!.length).toBe(32000 * 256);
      expect(logits!.every(Number.isFinite)).toBe(true);
      const profile = exe.profile!;
      expect(Object.keys(profile.hostOps).sort()).toEqual(['embedding', 'rmsnorm']);
      expect(profile.hostOps.embedding).toMatchObject({ runs: 1, kernels: ['embeddingForward'] });
      expect(profile.hostOps.rmsnorm).toMatchObject({ runs: 13, kernels: ['rmsnormForward'] });
      expect(Object.values(profile.programs).reduce((n, p) => n + p.runs, 0)).toBe(plan.kernels.length);
      console.log(exe.report());
    } finally {
      device.dispose();
    }
  });

  it('a host op with no registered kernel runs on the generic float32 evaluator, flagged slow, with the right values', () => {
    const g = new Graph();
    const x = g.input('x', [16, 8]);
    const y = layerNorm(
      linear(x, g.param('w', [16, 16]), { name: 'proj' }),
      g.param('gain', [16]),
      undefined,
      {
        name: 'ln',
      },
    );
    g.output('y', y);
    const plan = partition(g);
    expect(plan.hostOps.map((op) => op.kind)).toContain('layernorm');
    const feeds = {
      x: normals(128, 1, 1),
      w: normals(256, 0.25, 2),
      gain: normals(16, 0.1, 3).map((v) => 1 + v),
    };
    const device = openDevice({ backend: 'sim' });
    try {
      const exe = device.load(plan);
      expect(exe.slowHostOps).toEqual([
        { name: 'ln', kind: 'layernorm', reason: "no host kernel is registered for 'layernorm'" },
      ]);
      expect(exe.report()).toContain(
        "SLOW generic float32 evaluator (no host kernel is registered for 'layernorm')",
      );
      const { y: got } = exe.runSync(feeds);
      const [expected] = evaluate([y], feeds);
      expect(worstRatio(got!, expected!, ATOL, RTOL)).toBeLessThanOrEqual(1);
      expect(exe.profile!.hostOps.layernorm!.kernels).toEqual(['generic']);
    } finally {
      device.dispose();
    }
  });
});

describe('run, runSync, read and the profile', () => {
  it('run (overlapped) and runSync (in order) give the same bits; read returns intermediate values', async () => {
    const config: Config = { ...BASE, layers: 2 };
    const { graph, feeds } = build(config);
    const plan = partition(graph);
    const device = openDevice({ backend: 'sim' });
    try {
      const exe = device.load(plan);
      const async = (await exe.run(feeds, { copy: true })).out!;
      const sync = exe.runSync(feeds).out!;
      expect(Buffer.from(async.buffer).equals(Buffer.from(sync.buffer))).toBe(true);
      // An intermediate value passed between steps, against the interpreter.
      const h = graph.node('layers.0.h');
      const [expected] = evaluate([h], feeds);
      expect(worstRatio(exe.read('layers.0.h'), expected!, ATOL, RTOL)).toBeLessThanOrEqual(1);
      expect(Array.from(exe.read('layers.0.wq'))).toEqual(Array.from(feeds['layers.0.wq']!));
      const profile = exe.profile!;
      expect(profile.steps.length).toBe(plan.steps.length);
      expect(profile.totalMs).toBeGreaterThanOrEqual(profile.idleMs);
      expect(profile.steps.every((s) => s.endMs >= s.startMs)).toBe(true);
    } finally {
      device.dispose();
    }
  });

  it('on the simulator, runs a kernel on the JS thread once its shortest run took at most 1 ms, with the same bits', async () => {
    const { graph, feeds } = build({ ...BASE, layers: 2 });
    const plan = partition(graph);
    const device = openDevice({ backend: 'sim' });
    try {
      const exe = device.load(plan);
      const shortest = new Map<string, number>();
      let first: Buffer | undefined;
      for (let run = 0; run < 4; run++) {
        const out = Buffer.from((await exe.run(feeds, { copy: true })).out!.buffer);
        first ??= out;
        expect(out.equals(first), `run ${run}`).toBe(true);
        const kernels = exe.profile!.steps.filter((step) => step.kind === 'kernel');
        expect(kernels.length).toBe(plan.kernels.length);
        for (const step of kernels) {
          const before = shortest.get(step.label);
          // Decided from the runs before (a margin either side of 1 ms: the executor's own timer
          // reads the clock a moment apart from the profile's).
          if (before === undefined) expect(step.onJsThread, step.label).toBe(false);
          else if (before < 0.9) expect(step.onJsThread, step.label).toBe(true);
          else if (before > 1.1) expect(step.onJsThread, step.label).toBe(false);
          shortest.set(step.label, Math.min(before ?? Number.POSITIVE_INFINITY, step.endMs - step.startMs));
        }
      }
      // The small kernels of this plan did move (else this test would check nothing).
      expect(exe.profile!.steps.some((step) => step.onJsThread)).toBe(true);
      // runSync runs every step on the JS thread.
      exe.runSync(feeds);
      expect(exe.profile!.steps.filter((s) => s.kind === 'kernel').every((s) => s.onJsThread)).toBe(true);
    } finally {
      device.dispose();
    }
  });

  it('on the simulator, stages a weight of 1M values or more as background work, with the bits runSync stages', async () => {
    // y = W·x with W [1024, 1024], a weight packed into the kernel's input.
    const g = new Graph();
    const x = g.input('x', [1024, 8]);
    const w = g.param('w', [1024, 1024]);
    g.output('y', linear(x, w, { name: 'y' }));
    const plan = partition(g);
    const feeds = { x: normals(1024 * 8, 1, 3), w: normals(1024 * 1024, 0.03, 4) };
    const device = openDevice({ backend: 'sim' });
    try {
      const exe = device.load(plan);
      const early = Buffer.from((await exe.run(feeds, { copy: true })).y!.buffer);
      const staged = exe.profile!.backgroundStaging;
      expect(staged.map((s) => [s.source, s.values])).toEqual([['w', 1024 * 1024]]);
      expect(staged[0]!.endMs).toBeGreaterThanOrEqual(staged[0]!.startMs);
      // Staged once per version: a second run with the same weight stages nothing.
      expect(Buffer.from((await exe.run(undefined, { copy: true })).y!.buffer).equals(early)).toBe(true);
      expect(exe.profile!.backgroundStaging).toEqual([]);
      // A fresh executable staging on the JS thread (runSync) gives the same bits.
      const fresh = device.load(plan);
      expect(Buffer.from(fresh.runSync(feeds, { copy: true }).y!.buffer).equals(early)).toBe(true);
      expect(fresh.profile!.backgroundStaging).toEqual([]);
      // A rewritten weight is staged again in the background and gives runSync's bits.
      const changed = normals(1024 * 1024, 0.03, 5);
      exe.write('w', changed);
      fresh.write('w', changed);
      const rewritten = Buffer.from((await exe.run(undefined, { copy: true })).y!.buffer);
      expect(exe.profile!.backgroundStaging.map((s) => s.source)).toEqual(['w']);
      expect(rewritten.equals(early)).toBe(false);
      expect(rewritten.equals(Buffer.from(fresh.runSync(undefined, { copy: true }).y!.buffer))).toBe(true);
    } finally {
      device.dispose();
    }
  });

  it('sums an output over the batch when asked', () => {
    const g = new Graph();
    const x = g.input('x', [8, 4]);
    const y = linear(x, g.param('w', [8, 8]), { name: 'proj' });
    g.output('y', rmsNorm(y, g.param('gain', [8]), { name: 'norm' }));
    const plan = partition(g);
    const feeds = { w: normals(64, 0.3, 1), gain: normals(8, 0.1, 2).map((v) => 1 + v) };
    const device = openDevice({ backend: 'sim' });
    try {
      const xs = [normals(32, 1, 3), normals(32, 1, 4), normals(32, 1, 5)];
      const each = xs.map((x) => device.load(plan).runSync({ ...feeds, x }).y!);
      const summed = device.load(plan, { batch: 3, sumOverBatch: ['y'] }).runSync({
        ...feeds,
        x: Float32Array.from([...xs[0]!, ...xs[1]!, ...xs[2]!]),
      }).y!;
      expect(summed.length).toBe(32);
      for (let i = 0; i < 32; i++)
        expect(summed[i]).toBeCloseTo(each[0]![i]! + each[1]![i]! + each[2]![i]!, 5);
    } finally {
      device.dispose();
    }
  });
});

describe('bad input: typed errors, nothing lost', () => {
  const { graph, feeds } = build({ ...BASE, layers: 1 });
  const plan = partition(graph);

  it('refuses what is not a plan, a plan for another chip, and unknown options', () => {
    const device = openDevice({ backend: 'sim' });
    try {
      expect(() => device.load({} as never)).toThrow(PlanError);
      expect(() => device.load(null as never)).toThrow(/partition\(graph\)/);
      expect(() => device.load(partition(graph, { chip: 'M1' }))).toThrow(
        /partitioned for M1.*chip: device.chip/,
      );
      expect(() => device.load(plan, { bach: 2 } as never)).toThrow(/did you mean 'batch'/);
      expect(() => device.load(plan, { batch: 0 })).toThrow(PlanError);
      expect(() => device.load(plan, { batch: 1.5 })).toThrow(PlanError);
      // A batch whose inputs cannot be allocated is a PlanError naming the value, not a bare RangeError.
      expect(() => device.load(plan, { batch: 2 ** 40 })).toThrow(
        /cannot allocate .* for 'x' .*× batch 1099511627776.*smaller batch/,
      );
      expect(device.kernelCount).toBe(0);
      expect(() => device.load(plan, { sumOverBatch: ['outs'] })).toThrow(/did you mean 'out'/);
    } finally {
      device.dispose();
    }
  });

  it('refuses bad feeds before writing anything', () => {
    const device = openDevice({ backend: 'sim' });
    try {
      const exe = device.load(plan);
      const good = exe.runSync(feeds, { copy: true }).out!;
      const x = feeds.x!;
      expect(() => exe.runSync({ X: x })).toThrow(/cannot feed 'X'.*did you mean 'x'/);
      expect(() => exe.runSync({ x: x.subarray(1) })).toThrow(PlanFeedError);
      expect(() => exe.runSync({ x: Buffer.from(x.buffer) as never })).toThrow(
        /takes a Float32Array of values or a Uint16Array/,
      );
      expect(() => exe.runSync({ x: 'values' as never })).toThrow(PlanFeedError);
      expect(() => exe.runSync([x] as never)).toThrow(/feeds must be an object/);
      expect(() => exe.runSync({ 'layers.0.h': x })).toThrow(/a value the plan computes/);
      expect(() => exe.runSync({ x }, { cpy: true } as never)).toThrow(/unknown run option 'cpy'/);
      // A good feed next to a bad one is not written either: the output is unchanged.
      expect(() => exe.runSync({ x: normals(x.length, 1, 9), 'layers.0.wq': new Float32Array(3) })).toThrow(
        PlanFeedError,
      );
      expect(Buffer.from(exe.runSync().out!.buffer).equals(Buffer.from(good.buffer))).toBe(true);
      expect(() => exe.read('nope')).toThrow(PlanError);
      expect(() => exe.write('layers.0.h', x)).toThrow(PlanFeedError);
    } finally {
      device.dispose();
    }
  });

  it('a load that runs out of compile budget fails whole, leaving no kernels behind', () => {
    const device = openDevice({ backend: 'sim', compileBudget: 1 });
    try {
      expect(plan.programs.length).toBeGreaterThan(1);
      expect(() => device.load(plan)).toThrow(CompileBudgetError);
      expect(device.kernelCount).toBe(0);
    } finally {
      device.dispose();
    }
  });

  it('copies feeds in: views of resizable buffers and Node Buffers work, a detached one is a length error', () => {
    const device = openDevice({ backend: 'sim' });
    try {
      const exe = device.load(plan);
      const good = exe.runSync(feeds, { copy: true }).out!;
      const x = feeds.x!;
      const Resizable = ArrayBuffer as unknown as new (
        n: number,
        o: { maxByteLength: number },
      ) => ArrayBuffer;
      const resizable = new Float32Array(new Resizable(x.byteLength, { maxByteLength: 2 * x.byteLength }));
      resizable.set(x);
      expect(Buffer.from(exe.runSync({ x: resizable }).out!.buffer).equals(Buffer.from(good.buffer))).toBe(
        true,
      );
      const pooled = Buffer.alloc(x.byteLength + 4);
      const view = new Float32Array(pooled.buffer, pooled.byteOffset + 4, x.length);
      view.set(x);
      expect(Buffer.from(exe.runSync({ x: view }).out!.buffer).equals(Buffer.from(good.buffer))).toBe(true);
      const detached = x.slice();
      structuredClone(detached.buffer, { transfer: [detached.buffer] });
      expect(() => exe.runSync({ x: detached })).toThrow(/takes 2048 values .* got 0/);
    } finally {
      device.dispose();
    }
  });

  it('names every source a first run lacks; read before a run says so', () => {
    const device = openDevice({ backend: 'sim' });
    try {
      const exe = device.load(plan);
      expect(() => exe.read('out')).toThrow(/run the plan first/);
      expect(() => exe.runSync({ x: feeds.x! })).toThrow(/no value for 'layers.0.attn_norm'.*'layers.0.w2'/);
      expect(exe.sources.map((s) => s.name)).toContain('layers.0.wq');
    } finally {
      device.dispose();
    }
  });

  it('refuses a second run while one is in flight, and use after dispose', async () => {
    const device = openDevice({ backend: 'sim' });
    try {
      const exe = device.load(plan);
      const first = exe.run(feeds);
      expect(() => exe.runSync()).toThrow(DeviceError);
      expect(() => exe.write('x', feeds.x!)).toThrow(/running/);
      await first;
      exe.dispose();
      expect(() => exe.runSync()).toThrow(/disposed/);
    } finally {
      device.dispose();
    }
  });

  it('an out-of-range token is an error naming it, and the next good run works', async () => {
    const { graph: model } = llamaGraph({ dim: 32, heads: 2, hidden: 64, seq: 8, layers: 1, vocab: 16 });
    const device = openDevice({ backend: 'sim' });
    try {
      const exe = device.load(partition(model));
      let seed = 1;
      for (const s of exe.sources) if (s.role === 'param') exe.write(s.name, normals(s.length, 0.1, seed++));
      await expect(exe.run({ tokens: Int32Array.of(1, 2, 3, 99, 4, 5, 6, 7) })).rejects.toThrow(/99/);
      expect(() => exe.runSync({ tokens: [1, 2, 3, 4.5, 4, 5, 6, 7] })).toThrow(/not a whole int32/);
      const { logits } = await exe.run({ tokens: Int32Array.of(1, 2, 3, 4, 5, 6, 7, 8) });
      expect(logits!.every(Number.isFinite)).toBe(true);
    } finally {
      device.dispose();
    }
  });
});
