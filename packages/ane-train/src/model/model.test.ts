import { evaluate } from 'ane-ir';
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../errors';
import {
  batchTrainingGraph,
  buildForwardGraph,
  buildTrainingGraph,
  initParameters,
  PASS_ACTIVATION_BYTES,
  PASS_POSITIONS,
  PRESETS,
  parameterCount,
  parameterSpecs,
  parseLlamaConfig,
  planActivationBytes,
  resolveModel,
  sequencesPerPass,
  TRAINING_IO,
} from './index';

const HF_TINY = {
  architectures: ['LlamaForCausalLM'],
  model_type: 'llama',
  hidden_size: 32,
  intermediate_size: 64,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  vocab_size: 64,
  rms_norm_eps: 1e-5,
  rope_theta: 10000,
  tie_word_embeddings: false,
  max_position_embeddings: 128,
  torch_dtype: 'float32',
};

describe('model configs', () => {
  it('reads a Hugging Face config.json and fills its defaults', () => {
    const config = parseLlamaConfig({
      hidden_size: 64,
      intermediate_size: 128,
      num_hidden_layers: 1,
      num_attention_heads: 4,
      vocab_size: 10,
    });
    expect(config).toEqual({
      model_type: 'llama',
      hidden_size: 64,
      intermediate_size: 128,
      num_hidden_layers: 1,
      num_attention_heads: 4,
      num_key_value_heads: 4,
      head_dim: 16,
      vocab_size: 10,
      rms_norm_eps: 1e-6,
      rope_theta: 10000,
      tie_word_embeddings: false,
      max_position_embeddings: 2048,
    });
    expect(
      parseLlamaConfig({ ...HF_TINY, model_type: undefined, architectures: ['Qwen3ForCausalLM'] }).model_type,
    ).toBe('qwen3');
  });

  it('refuses a config that does not fit, naming the field and the file', () => {
    const attempt = (value: unknown) => {
      try {
        parseLlamaConfig(value, { file: 'config.json' });
      } catch (error) {
        return error as ConfigError;
      }
      throw new Error('accepted');
    };
    const missing = attempt({ ...HF_TINY, hidden_size: undefined });
    expect(missing).toBeInstanceOf(ConfigError);
    expect(missing.field).toBe('hidden_size');
    expect(missing.file).toBe('config.json');
    expect(missing.message).toContain("model config in config.json: 'hidden_size'");
    expect(attempt({ ...HF_TINY, num_key_value_heads: 3 }).field).toBe('num_key_value_heads');
    expect(attempt({ ...HF_TINY, hidden_size: 30 }).field).toBe('head_dim');
    expect(attempt({ ...HF_TINY, vocab_size: 1.5 }).field).toBe('vocab_size');
    expect(attempt({ ...HF_TINY, hidden_act: 'gelu' }).field).toBe('hidden_act');
    expect(attempt('{}').field).toBe('(root)');
    expect(() => resolveModel('stories15m' as never)).toThrow(
      /unknown model preset 'stories15m': the presets are tiny, stories15M/,
    );
  });

  it('counts parameters as the published models do', () => {
    // llama2.c's Stories110M: 109.53M (84.95M in the blocks + 24.58M embedding); Stories15M: 15.19M.
    expect(parameterCount(PRESETS.stories110M)).toBe(109_529_856);
    expect(parameterCount(PRESETS.stories15M)).toBe(15_191_712);
    // Qwen3-0.6B: 596M with the tied embedding (hand count: 151936·1024 + 28·(…) + 1024).
    const qwen = PRESETS['qwen3-0.6b'];
    const perLayer = 2 * 1024 + 2 * 128 + 2048 * 1024 + 2 * 1024 * 1024 + 1024 * 2048 + 3 * 1024 * 3072;
    expect(parameterCount(qwen)).toBe(151936 * 1024 + 28 * perLayer + 1024);
  });

  it('names parameters as Hugging Face does', () => {
    const specs = parameterSpecs(parseLlamaConfig(HF_TINY));
    expect(specs.slice(0, 10).map((s) => `${s.name} ${s.shape.join('x')}`)).toEqual([
      'model.embed_tokens.weight 64x32',
      'model.layers.0.input_layernorm.weight 32',
      'model.layers.0.self_attn.q_proj.weight 32x32',
      'model.layers.0.self_attn.k_proj.weight 16x32',
      'model.layers.0.self_attn.v_proj.weight 16x32',
      'model.layers.0.self_attn.o_proj.weight 32x32',
      'model.layers.0.post_attention_layernorm.weight 32',
      'model.layers.0.mlp.gate_proj.weight 64x32',
      'model.layers.0.mlp.up_proj.weight 64x32',
      'model.layers.0.mlp.down_proj.weight 32x64',
    ]);
    expect(specs.at(-1)!.name).toBe('lm_head.weight');
    expect(specs.at(-2)!.name).toBe('model.norm.weight');
    expect(parameterSpecs(PRESETS['qwen3-0.6b']).map((s) => s.name)).toContain(
      'model.layers.27.self_attn.k_norm.weight',
    );
  });

  it('initializes seeded: N(0, 0.02²) matrices, scaled residual projections, unit gains', () => {
    const config = parseLlamaConfig(HF_TINY);
    const a = initParameters(config, { seed: 7 });
    const b = initParameters(config, { seed: 7 });
    expect(a.get('model.layers.1.mlp.up_proj.weight')).toEqual(b.get('model.layers.1.mlp.up_proj.weight'));
    expect(initParameters(config, { seed: 8 }).get('lm_head.weight')).not.toEqual(a.get('lm_head.weight'));
    const embed = a.get('model.embed_tokens.weight')!;
    const std = Math.sqrt(embed.reduce((s, v) => s + v * v, 0) / embed.length);
    expect(std).toBeGreaterThan(0.018);
    expect(std).toBeLessThan(0.022);
    const down = a.get('model.layers.0.mlp.down_proj.weight')!;
    const downStd = Math.sqrt(down.reduce((s, v) => s + v * v, 0) / down.length);
    expect(downStd).toBeGreaterThan(0.018 / 2); // 0.02 / sqrt(2 · 2 layers) = 0.01
    expect(downStd).toBeLessThan(0.022 / 2);
    expect(a.get('model.norm.weight')!.every((v) => v === 1)).toBe(true);
  });

  it('initParameters, parameterCount and parameterSpecs take a preset name; null or bad options are ConfigErrors', () => {
    // 'tiny' was read as a config object: parameterCount NaN, initParameters 3 tensors of junk
    expect(parameterCount('tiny')).toBe(parameterCount(PRESETS.tiny));
    expect([...initParameters('tiny', { seed: 1 }).keys()]).toEqual(
      parameterSpecs(PRESETS.tiny).map((s) => s.name),
    );
    expect(() => parameterCount('tiny2' as never)).toThrow(/unknown model preset 'tiny2'/);
    for (const run of [
      () => initParameters(null as never),
      () => parameterCount(null as never),
      () => parameterSpecs(undefined as never),
      () => initParameters(PRESETS.tiny, null as never),
      () => initParameters(PRESETS.tiny, { std: Number.NaN }), // NaN weights, silently
      () => initParameters(PRESETS.tiny, { std: -1 }),
      () => initParameters(PRESETS.tiny, { seed: 1.5 }),
      () => initParameters(PRESETS.tiny, { sed: 3 } as never), // a typo was ignored
    ]) {
      expect(run).toThrow(ConfigError);
    }
  });

  it('buildForwardGraph / buildTrainingGraph: a preset name is resolved; null config or an unknown chip are ConfigErrors', () => {
    // null was a TypeError; chip 'M9' a plain Error from the rule table ('rule dim-spatial has no limit for M9')
    for (const build of [buildForwardGraph, buildTrainingGraph]) {
      expect(() => build(null as never, { seq: 8 })).toThrow(ConfigError);
      expect(() => build(PRESETS.tiny, { seq: 8, chip: 'M9' as never })).toThrow(
        /chip must be one of M1, M2, M3, M4, M5/,
      );
      expect(() => build(PRESETS.tiny, null as never)).toThrow(ConfigError);
    }
    const forward = buildForwardGraph('tiny', { seq: 8 });
    expect(forward.config).toEqual(PRESETS.tiny);
    expect(forward.plan.programs.length).toBe(
      buildForwardGraph(PRESETS.tiny, { seq: 8 }).plan.programs.length,
    );
  });

  it('a model too large for this machine is a ConfigError at once, not an allocation that crashes or runs for minutes', () => {
    const huge = { ...PRESETS.tiny, vocab_size: 2 ** 40 }; // 2^46 fp32 values: 256 TiB
    expect(() => initParameters(huge)).toThrow(
      /the model has \d+ parameters; 4 bytes each is .* GiB, more than this machine's/,
    );
  });
});

describe('the training graph', () => {
  it('shares its programs across layers: the count does not grow with depth', () => {
    const base = parseLlamaConfig(HF_TINY);
    const two = buildTrainingGraph(base, { seq: 16 });
    const four = buildTrainingGraph({ ...base, num_hidden_layers: 4 }, { seq: 16 });
    expect(four.plan.programs.length).toBe(two.plan.programs.length);
    expect(four.plan.kernels.length).toBeGreaterThan(two.plan.kernels.length);
    expect(two.gradOutput('model.layers.1.self_attn.q_proj.weight')).toBe('grad.layers.1.wq');
    expect(() => two.gradOutput('model.layers.9.mlp.up_proj.weight')).toThrow(ConfigError);
  });

  it("puts a classifier wider than the chip's spatial cap on the host, and says why", () => {
    const wide = { ...parseLlamaConfig(HF_TINY), vocab_size: 16384, tie_word_embeddings: true };
    const m1 = buildTrainingGraph(wide, { seq: 8, chip: 'M1' });
    expect(m1.hostPlacements.map((p) => p.op)).toEqual(['output']);
    expect(m1.hostPlacements[0]!.reason).toContain('over the M1 spatial cap 16384 [ANE rule dim-spatial]');
    expect(m1.plan.hostOps.map((op) => op.kind)).toContain('linear');
    const m4 = buildTrainingGraph(wide, { seq: 8, chip: 'M4' });
    expect(m4.hostPlacements).toEqual([]);
    expect(m4.plan.hostOps.map((op) => op.kind)).not.toContain('linear');
  });

  it('refuses a sequence longer than the model takes', () => {
    expect(() => buildTrainingGraph(PRESETS.tiny, { seq: 257 })).toThrow(/max_position_embeddings \(256\)/);
    expect(() => buildTrainingGraph(PRESETS.tiny, { seq: 0 })).toThrow(ConfigError);
  });

  it('computes several sequences in one graph (sequences) with the float64 loss and gradients of one graph per sequence, averaged', () => {
    const config = parseLlamaConfig(HF_TINY);
    const seq = 6;
    const sequences = 3;
    const weights = initParameters(config, { seed: 5 });
    const tokens = Int32Array.from(
      { length: sequences * (seq + 1) },
      (_, i) => (i * 37 + 11) % config.vocab_size,
    );
    const evaluateGraph = (
      training: ReturnType<typeof buildTrainingGraph>,
      inputs: Int32Array,
      targets: Int32Array,
    ) => {
      const output = (name: string) => training.graph.outputs.find((o) => o.name === name)!.tensor;
      const names = training.parameters.map((p) => p.name);
      const params: Record<string, Float32Array> = {};
      for (const p of training.parameters) params[p.source] = weights.get(p.name)!;
      const [loss, ...grads] = evaluate(
        [output(TRAINING_IO.loss), ...names.map((n) => output(training.gradOutput(n)))],
        {
          ...params,
          [TRAINING_IO.tokens]: inputs,
          [TRAINING_IO.targets]: targets,
          [TRAINING_IO.lossScale]: Float32Array.of(1),
        },
      );
      return { loss: loss![0]!, grads: new Map(names.map((n, i) => [n, grads[i]!])) };
    };
    const window = (b: number) => tokens.subarray(b * (seq + 1), (b + 1) * (seq + 1));
    const single = buildTrainingGraph(config, { seq });
    const each = [0, 1, 2].map((b) => evaluateGraph(single, window(b).slice(0, seq), window(b).slice(1)));
    const folded = buildTrainingGraph(config, { seq, sequences });
    expect(folded.sequences).toBe(sequences);
    const inputs = new Int32Array(sequences * seq);
    const targets = new Int32Array(sequences * seq);
    for (let b = 0; b < sequences; b++) {
      inputs.set(window(b).slice(0, seq), b * seq);
      targets.set(window(b).slice(1), b * seq);
    }
    const together = evaluateGraph(folded, inputs, targets);
    const meanLoss = each.reduce((sum, r) => sum + r.loss, 0) / sequences;
    expect(Math.abs(together.loss - meanLoss)).toBeLessThan(1e-9 * Math.abs(meanLoss));
    for (const [name, grad] of together.grads) {
      let largest = 0;
      let worst = 0;
      grad.forEach((value, j) => {
        const mean = each.reduce((sum, r) => sum + r.grads.get(name)![j]!, 0) / sequences;
        largest = Math.max(largest, Math.abs(mean));
        worst = Math.max(worst, Math.abs(value - mean));
      });
      expect(worst, name).toBeLessThanOrEqual(1e-9 * largest + 1e-12);
    }
    // Its programs are the one-sequence graph's, over 18 positions instead of 6.
    expect(folded.plan.programs.length).toBe(single.plan.programs.length);
    expect(() => buildTrainingGraph(config, { seq, sequences: 0 })).toThrow(ConfigError);
    expect(() => buildTrainingGraph(config, { seq, sequences: 1.5 })).toThrow(
      /sequences must be a whole number/,
    );
  });

  it('batchTrainingGraph folds sequencesPerPass sequences while a pass holds at most PASS_ACTIVATION_BYTES', () => {
    expect(PASS_ACTIVATION_BYTES).toBe(1.5 * 2 ** 30);
    for (const [model, seq, batch, expected] of [
      ['stories15M', 256, 4, 4], // 606 MiB
      ['stories110M', 256, 4, 2], // 4 would hold 1944 MiB, 2 1066
      ['stories110M', 512, 2, 1], // 2 would hold 1944 MiB
    ] as const) {
      const bytes = (sequences: number) =>
        planActivationBytes(buildTrainingGraph(model, { seq, sequences }).plan);
      const fold = sequencesPerPass(seq, batch);
      let largest = 1;
      for (let k = fold; k > 1 && largest === 1; k--)
        if (batch % k === 0 && bytes(k) <= PASS_ACTIVATION_BYTES) largest = k;
      expect(largest, `${model} seq ${seq} batch ${batch}`).toBe(expected);
      const chosen = batchTrainingGraph(model, { seq, batch });
      expect(chosen.sequences, `${model} seq ${seq} batch ${batch}`).toBe(expected);
      expect(chosen.seq).toBe(seq);
    }
    // A sequences count given is taken as is; the tiny preset folds its whole batch of 8.
    expect(batchTrainingGraph('stories110M', { seq: 256, batch: 4, sequences: 4 }).sequences).toBe(4);
    expect(batchTrainingGraph('tiny', { seq: 64, batch: 8 }).sequences).toBe(8);
    // Bad input: a ConfigError naming what is wrong.
    for (const [options, what] of [
      [null, /takes options/],
      [{ seq: 64 }, /batch must be a whole number ≥ 1 \(sequences per step\), got undefined/],
      [{ seq: 64, batch: '8' }, /got string "8"/],
      [{ seq: 64, batch: 0 }, /got 0/],
      [{ seq: 0, batch: 8 }, /seq must be a whole number/],
      [{ seq: 64, batch: 8, sequences: 3 }, /sequences \(3\) must divide the batch \(8\)/],
      [{ seq: 64, batch: 8, sequences: 0 }, /sequences must be a whole number/],
    ] as const)
      expect(() => batchTrainingGraph('tiny', options as never), JSON.stringify(options)).toThrow(what);
    expect(() => batchTrainingGraph('tiny', { seq: 64, batch: 2.5 })).toThrow(ConfigError);
  });

  it('sequencesPerPass: the largest divisor of the batch whose sequences fit PASS_POSITIONS', () => {
    expect(PASS_POSITIONS).toBe(1024);
    expect(sequencesPerPass(64, 8)).toBe(8);
    expect(sequencesPerPass(64, 32)).toBe(16);
    expect(sequencesPerPass(8, 3)).toBe(3);
    expect(sequencesPerPass(400, 3)).toBe(1); // 2 × 400 fits but does not divide 3
    expect(sequencesPerPass(256, 4)).toBe(4);
    expect(sequencesPerPass(256, 6)).toBe(3);
    expect(sequencesPerPass(600, 2)).toBe(1);
    expect(sequencesPerPass(1, 5000)).toBe(1000);
    expect(sequencesPerPass(64, 1)).toBe(1);
    for (const [seq, batch] of [
      [0, 8],
      [64, 0],
      [-1, 4],
      [Number.NaN, 4],
      [64, 2.5],
      [Number.POSITIVE_INFINITY, 4],
      ['64' as unknown as number, 8],
    ] as const)
      expect(() => sequencesPerPass(seq, batch), `${String(seq)}, ${String(batch)}`).toThrow(ConfigError);
  });
});
