/**
 * Forward+backward plans of Llama models in ane-ir's default packed I/O: kernels never span two
 * layers, so the number of distinct programs does not grow with depth; every host op says why.
 */
import { valueAndGrad } from 'ane-autograd';
import { openDevice } from 'ane-bridge';
import { evaluate, mul, partition, reduceSum } from 'ane-ir';
import { describe, expect, it } from 'vitest';
import {
  type LlamaConfig,
  llamaGraph,
  STORIES_110M,
} from '../../packages/ane-ir/src/testing/models.test-helper';

/** A Llama graph with a stand-in loss (mean of squared outputs), its backward, and its packed plan. */
function derivedPlan(config: LlamaConfig, lossScale = false) {
  // Shapes only: weights are kernel inputs; the loss is a stand-in for cross-entropy.
  const started = performance.now();
  const { graph, output } = llamaGraph(config);
  const [channels, positions] = output.shape as [number, number];
  const loss = mul(reduceSum(mul(output, output), [0, 1], { keepDims: true }), 1 / (channels * positions));
  const result = valueAndGrad(graph, { loss, lossScale });
  // Weight gradients run on the host by default (rule ir-weight-grad-host): no placement needed.
  const plan = partition(graph);
  const report = plan.report();
  return { plan, result, report, ms: performance.now() - started };
}

describe('forward+backward plans in packed mode', () => {
  it('has the same number of distinct programs for 2 and 12 layers (kernels never span two layers)', () => {
    const small = { dim: 64, heads: 4, hidden: 96, seq: 32 };
    const two = derivedPlan({ ...small, layers: 2 });
    const twelve = derivedPlan({ ...small, layers: 12 });
    // Before scopes, packed mode failed here: "placement did not settle after 16 rounds".
    expect(twelve.plan.programs.length).toBe(two.plan.programs.length);
    expect(twelve.plan.kernels.length).toBeGreaterThan(two.plan.kernels.length);
    // Every layer runs the same programs: no kernel holds ops of two layers.
    for (const kernel of twelve.plan.kernels) {
      const layers = new Set(kernel.nodes.map((n) => /^layers\.(\d+)\./.exec(n.name)?.[1]));
      expect(layers.size, kernel.name).toBe(1);
    }
    // No attention (or anything else) moved to the host silently: every host op is structural.
    const reasons = new Set(twelve.plan.hostOps.map((op) => op.ruleId));
    expect([...reasons].sort()).toEqual(['ir-fp16-sum-of-squares', 'ir-weight-grad-host']);
  });

  it('Stories110M: plans, lowers and prints like a 2-layer model, and says where every op runs and why', () => {
    const two = derivedPlan({ ...STORIES_110M, layers: 2 });
    const twelve = derivedPlan(STORIES_110M);
    // Measured, never asserted.
    console.log(
      `Stories110M forward+backward (packed): build + valueAndGrad + partition + lower + report ${twelve.ms.toFixed(0)} ms (2 layers: ${two.ms.toFixed(0)} ms)`,
    );
    const { plan, report, result } = twelve;
    expect(plan.programs.length).toBe(two.plan.programs.length);
    expect(result.grads.size).toBe(12 * 9 + 2);
    const count = (kind: string) => plan.hostOps.filter((op) => op.kind === kind).length;
    // dW of 7 matmuls and 2 gains per layer, the final norm's gain and the tied classifier.
    expect(count('weight_grad')).toBe(12 * 9 + 2);
    expect(count('embedding')).toBe(1);
    for (const op of plan.hostOps) {
      expect(op.reason.length, op.name).toBeGreaterThan(0);
      expect(op.ruleId, op.name).toBeDefined();
      expect(report).toContain(`host ${op.kind} '${op.name}'`);
    }
    expect(plan.hostOps.find((op) => op.kind === 'weight_grad')!.ruleId).toBe('ir-weight-grad-host');
    for (const placement of plan.placements) expect(placement.reason.length).toBeGreaterThan(0);
    for (const kernel of plan.kernels) expect(report).toContain(`ane  ${kernel.name} = P${kernel.program}`);
  });
});

/** A seeded generator of numbers in [0, 1) (mulberry32). */
function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** `count` values ~ N(0, scale²) (Box-Muller). */
function normals(count: number, scale: number, seed: number): Float32Array {
  const next = random(seed);
  const out = new Float32Array(count);
  for (let i = 0; i < count; i++) {
    const u = Math.max(next(), 1e-12);
    out[i] = scale * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * next());
  }
  return out;
}

/**
 * The fp16 bound, relative to each tensor's largest magnitude: kernels store every intermediate in
 * fp16 (11 significant bits, relative step 2⁻¹¹ ≈ 4.9e-4) and the backward of a block chains dozens
 * of such roundings (softmax, RoPE, SwiGLU, the transposed products); measured: at most 2.3e-3 (the
 * wk gradient). A wrong rule or a wrong plan (a missing transpose, a wrong head) is off by the order
 * of the values themselves.
 */
const FP16_BOUND = 0.01;

const BLOCK: LlamaConfig = {
  dim: 64,
  heads: 4,
  hidden: 96,
  seq: 32,
  layers: 2,
  convention: 'rotate-half',
};

/** Seeded inputs and weights for a derived graph (gains near 1, projections ~ N(0, 1/fan-in)). */
function feedsFor(graph: ReturnType<typeof derivedPlan>['result']['graph'], firstSeed: number) {
  const feeds: Record<string, Float32Array> = {};
  let seed = firstSeed;
  for (const node of graph.nodes) {
    if (node.op.kind === 'input' && node.name !== 'loss_scale')
      feeds[node.name] = normals(node.size, 1, seed++);
    else if (node.op.kind === 'param' && node.op.trainable) {
      feeds[node.name] =
        node.rank === 1
          ? normals(node.size, 0.1, seed++).map((v) => 1 + v)
          : normals(node.size, 1 / Math.sqrt(node.shape[1]!), seed++);
    }
  }
  // Loss scaling keeps the fp16 gradients of the ANE kernels away from the subnormals.
  feeds.loss_scale = new Float32Array([1024]);
  return feeds;
}

/** The derived block's plan and graph, its trainable weights' names, and a simulator device. */
function trainingBlock() {
  const { plan, result } = derivedPlan(BLOCK, true);
  const graph = result.graph;
  const params = graph.nodes.filter((n) => n.op.kind === 'param' && n.op.trainable).map((n) => n.name);
  return { plan, graph, params, device: openDevice({ backend: 'sim' }) };
}

const sameBits = (a: ArrayBufferView, b: ArrayBufferView) =>
  Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));

describe('a derived Llama block through device.load (packed, simulator)', () => {
  it('matches the float64 evaluation of the same graph for the loss and every gradient', () => {
    const { plan, result } = derivedPlan(BLOCK, true);
    const graph = result.graph;
    const feeds = feedsFor(graph, 1);
    const named = graph.outputs;
    const reference = evaluate(
      named.map((o) => o.tensor),
      feeds,
    );
    const device = openDevice({ backend: 'sim' });
    try {
      const outputs = device.load(plan).runSync(feeds);
      const rows: string[] = [];
      named.forEach(({ name }, i) => {
        const expected = reference[i]!;
        const actual = outputs[name] as Float32Array;
        expect(actual.length, name).toBe(expected.length);
        let maxAbs = 0;
        let maxError = 0;
        for (let j = 0; j < expected.length; j++) {
          maxAbs = Math.max(maxAbs, Math.abs(expected[j]!));
          maxError = Math.max(maxError, Math.abs(actual[j]! - expected[j]!));
        }
        const relative = maxError / maxAbs;
        rows.push(
          `${name.padEnd(28)} max |ref| ${maxAbs.toExponential(2)}  max abs err ${maxError.toExponential(2)}  rel ${relative.toExponential(2)}`,
        );
        expect(maxAbs, `${name} is not all zeros`).toBeGreaterThan(0);
        expect(relative, name).toBeLessThan(FP16_BOUND);
      });
      console.log(rows.join('\n'));
    } finally {
      device.dispose();
    }
  });
});

describe('training runs through device.load: overlapped runs with weights rewritten between them', () => {
  it('give, run after run, the bits of a fresh executable run in plan order; batch-1 outputs are its own arrays', async () => {
    const { plan, graph, params, device } = trainingBlock();
    try {
      const exe = device.load(plan);
      let feeds = feedsFor(graph, 1);
      let previous: Record<string, ArrayBufferView> | undefined;
      for (let run = 0; run < 3; run++) {
        // Run 0 feeds everything; later runs rewrite only the weights (as an optimizer step does),
        // which the overlapped run stages ahead, while the device waits on a host op.
        const outputs =
          run === 0
            ? await exe.run(feeds)
            : await (async () => {
                const next = feedsFor(graph, 100 * run);
                for (const name of params) exe.write(name, next[name]!);
                feeds = { ...feeds, ...Object.fromEntries(params.map((name) => [name, next[name]!])) };
                return exe.run();
              })();
        const reference = device.load(plan).runSync(feeds);
        for (const { name } of graph.outputs) {
          expect(sameBits(outputs[name]!, reference[name]!), `run ${run}: ${name}`).toBe(true);
          // The executable's own arrays, the same ones every run (overwritten by the next).
          if (previous !== undefined) expect(outputs[name], name).toBe(previous[name]);
        }
        previous = outputs;
      }
      const copies = await exe.run(undefined, { copy: true });
      for (const { name } of graph.outputs) {
        expect(copies[name]).not.toBe(previous![name]);
        expect(sameBits(copies[name]!, previous![name]!), name).toBe(true);
        expect(sameBits(exe.read(name), previous![name]!), name).toBe(true);
      }
    } finally {
      device.dispose();
    }
  });
});

describe('host ops in flight together', () => {
  it('weight gradients overlap each other (at most 3 at once, as background work beside the simulated device), every other host op runs alone in the foreground, and the bits are those of a run in plan order', async () => {
    const { plan, graph, device } = trainingBlock();
    try {
      const feeds = feedsFor(graph, 7);
      const exe = device.load(plan);
      const outputs = await exe.run(feeds, { copy: true });
      const hostSteps = exe.profile!.steps.filter((step) => step.kind === 'host');
      const overlapping = (a: (typeof hostSteps)[number], b: (typeof hostSteps)[number]) =>
        a !== b && a.startMs < b.endMs && b.startMs < a.endMs;
      const weightGrads = hostSteps.filter((step) => step.hostKind === 'weight_grad');
      expect(weightGrads.length).toBeGreaterThan(3);
      // (small ones may run at once on this thread when only background work is in flight)
      expect(weightGrads.filter((step) => step.hostMode === 'background').length).toBeGreaterThan(1);
      expect(weightGrads.some((a) => weightGrads.some((b) => overlapping(a, b)))).toBe(true);
      for (const step of hostSteps) {
        // The device is the simulator (CPU work): weight gradients yield the cores to it (or, small
        // and with nothing else in flight or ready but background work, run at once on this thread).
        if (step.hostKind === 'weight_grad')
          expect(['background', 'sync'], step.label).toContain(step.hostMode);
        else expect(['sync', 'async'], step.label).toContain(step.hostMode);
        const others = hostSteps.filter((other) => overlapping(step, other));
        // Background work takes only the CPU time the rest leaves: it holds nothing back, but no
        // two host ops of the foreground overlap.
        if (step.hostKind !== 'weight_grad')
          expect(
            others.filter((other) => other.hostMode !== 'background'),
            step.label,
          ).toEqual([]);
        // At any instant at most three weight gradients in the background (checked at each start).
        const backgroundAtStart = others.filter(
          (o) => o.startMs <= step.startMs && o.hostMode === 'background',
        );
        expect(backgroundAtStart.length, step.label).toBeLessThanOrEqual(
          step.hostMode === 'background' ? 2 : 3,
        );
      }
      const reference = device.load(plan).runSync(feeds);
      for (const { name } of graph.outputs)
        expect(sameBits(outputs[name]!, reference[name]!), name).toBe(true);
    } finally {
      device.dispose();
    }
  });
});

describe('a batch summed over its sequences', () => {
  it('gives, run after run, the bits of summing in plan order (runSync), which are the sums of the sequences run one at a time', async () => {
    const { plan, graph, device } = trainingBlock();
    try {
      const batch = 3;
      const one = feedsFor(graph, 11);
      const inputs = graph.nodes.filter((n) => n.op.kind === 'input' && n.name !== 'loss_scale');
      const feeds: Record<string, Float32Array> = { ...one, loss_scale: new Float32Array(batch).fill(1024) };
      for (const input of inputs) feeds[input.name] = normals(input.size * batch, 1, 500);
      const summed = graph.outputs.map(({ name }) => name); // the loss and every gradient
      const exe = device.load(plan, { batch, sumOverBatch: summed });
      const reference = device.load(plan, { batch, sumOverBatch: summed }).runSync(feeds);
      for (let run = 0; run < 2; run++) {
        const outputs = await exe.run(feeds, { copy: true });
        for (const name of summed)
          expect(sameBits(outputs[name]!, reference[name]!), `run ${run}: ${name}`).toBe(true);
      }
      // And the sums are those of the sequences one at a time.
      const single = device.load(plan);
      expect(inputs.length).toBeGreaterThan(0);
      const bySequence = [0, 1, 2].map((b) =>
        single.runSync(
          {
            ...one,
            ...Object.fromEntries(
              inputs.map((n) => [n.name, feeds[n.name]!.subarray(b * n.size, (b + 1) * n.size)]),
            ),
          },
          { copy: true },
        ),
      );
      const name = summed[0]!;
      // The first sequence's values, then each next one added (fp32, in order).
      const total = Float32Array.from(bySequence[0]![name] as Float32Array);
      for (const outputs of bySequence.slice(1)) {
        const values = outputs[name] as Float32Array;
        for (let i = 0; i < total.length; i++) total[i] = Math.fround(total[i]! + values[i]!);
      }
      expect(sameBits(total, reference[name]!), name).toBe(true);
    } finally {
      device.dispose();
    }
  });
});

describe('exe.bind: weights and outputs shared with the caller', () => {
  it('gives the bits of copied weights and outputs, restages a weight rewritten in place, and refuses what it cannot share', async () => {
    const { plan, graph, params, device } = trainingBlock();
    try {
      const feeds = feedsFor(graph, 1);
      const shared = device.load(plan);
      const copied = device.load(plan);
      // Weights live in the caller's arrays; outputs are computed into the caller's arrays.
      const weights = new Map(params.map((name) => [name, feeds[name]!.slice()]));
      for (const [name, array] of weights) shared.bind(name, array);
      const outputs = new Map(
        graph.outputs.map(({ name, tensor }) => [
          name,
          new Float32Array(new SharedArrayBuffer(tensor.size * 4)),
        ]),
      );
      for (const [name, array] of outputs) shared.bind(name, array);
      const inputs = Object.fromEntries(Object.entries(feeds).filter(([name]) => !params.includes(name)));
      const first = await shared.run(inputs);
      const reference = await copied.run(feeds, { copy: true });
      for (const [name, array] of outputs) {
        expect(first[name], name).toBe(array);
        expect(sameBits(array, reference[name]!), name).toBe(true);
      }
      // An optimizer step in place, then a write of the same memory: restaged, nothing copied.
      const next = feedsFor(graph, 500);
      for (const [name, array] of weights) {
        array.set(next[name]!);
        shared.write(name, array);
        copied.write(name, next[name]!);
      }
      await shared.run();
      const after = await copied.run(undefined, { copy: true });
      for (const [name, array] of outputs) expect(sameBits(array, after[name]!), name).toBe(true);
      expect(() => shared.bind('nope', new Float32Array(1))).toThrow(/neither/);
      expect(() => shared.bind(params[0]!, new Float32Array(3))).toThrow(
        /expected a Float32Array of \d+ values/,
      );
      expect(() => shared.bind(params[0]!, new Float64Array(3) as never)).toThrow(/must be a Float32Array/);
      // Memory that could shrink under a kernel is refused when bound, not at the next run.
      const Resizable = ArrayBuffer as unknown as new (
        bytes: number,
        options: { maxByteLength: number },
      ) => ArrayBuffer;
      const resizable = new Resizable(weights.get(params[0]!)!.byteLength, { maxByteLength: 1 << 20 });
      expect(() => shared.bind(params[0]!, new Float32Array(resizable))).toThrow(/resizable ArrayBuffer/);
      // Memory lent with bind and then transferred away: a write says so, and nothing is read from it.
      const lent = weights.get(params[0]!)!.slice();
      shared.bind(params[0]!, lent);
      structuredClone(lent.buffer, { transfer: [lent.buffer] });
      expect(() => shared.write(params[0]!, weights.get(params[0]!)!)).toThrow(/was detached/);
      const batched = device.load(plan, { batch: 2 });
      expect(() =>
        batched.bind(graph.outputs[0]!.name, new Float32Array(graph.outputs[0]!.tensor.size)),
      ).toThrow(/with batch 1, an output/);
    } finally {
      device.dispose();
    }
  });
});
