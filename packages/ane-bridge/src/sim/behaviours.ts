/**
 * The hardware behaviours the simulator reproduces: one entry per rule of the ANE rule table whose
 * enforcement is 'simulator' (a test keeps the keys equal to `SIMULATED_RULE_IDS`). A program is
 * compiled for one chip family; every such rule that applies to that chip turns its behaviour on
 * in the program's `BehaviourSettings`, which the op planners read.
 */
import type { AneRule, ChipFamily } from 'ane-ir/mil';
import { getRule, ruleAppliesTo, ruleLimit, SIMULATED_RULE_IDS } from 'ane-ir/mil';
import { runSimOp } from './native-ops';

/** What the op planners do differently because of the chip's hardware rules. */
export interface BehaviourSettings {
  /** `op-sdpa-mil`: scaled_dot_product_attention ignores attn_mask. */
  ignoreAttentionMask: boolean;
  /** `num-matmul-output-inf`: matmul outputs with |y| >= this become ±inf. */
  matmulInfinityThreshold: number | undefined;
  /** `num-width-slice-saturation`: values with |v| > this, sliced by slice_by_size with a nonzero last-axis begin, become ±inf. */
  widthSliceSaturationLimit: number | undefined;
  /** reduce_sum rounds its running sum to fp16 after every add (a reading of `num-accumulator-width`). */
  narrowReduceSum: boolean;
}

export interface SimulatedBehaviour {
  /** Where and how the simulator reproduces the rule. */
  readonly how: string;
  /** Turns the behaviour on for a program compiled for `chip` (called only when the rule applies). */
  readonly enable: (settings: BehaviourSettings, rule: AneRule, chip: ChipFamily) => void;
}

const ALWAYS_ON = (): void => {};

export const SIMULATED_BEHAVIOURS: Readonly<Record<string, SimulatedBehaviour>> = {
  'op-sdpa-mil': {
    how: 'scaled_dot_product_attention is planned without its attn_mask.',
    enable: (settings) => {
      settings.ignoreAttentionMask = true;
    },
  },
  'num-fp16-range': {
    how: 'Every fp16 op result is rounded to nearest even (numerics.ts finishFloat); magnitudes that round past 65504 become ±inf.',
    enable: ALWAYS_ON,
  },
  'num-matmul-output-inf': {
    how: 'After each matmul, elements with |y| >= the rule limit (32752) become ±inf.',
    enable: (settings, rule, chip) => {
      settings.matmulInfinityThreshold = ruleLimit(rule, chip);
    },
  },
  'num-width-slice-saturation': {
    how: 'After a slice_by_size with a nonzero begin on the last axis, values with |v| > the rule limit (4094) become ±inf.',
    enable: (settings, rule, chip) => {
      settings.widthSliceSaturationLimit = ruleLimit(rule, chip);
    },
  },
  'num-accumulator-width': {
    how:
      'conv and matmul multiply fp16 operands and accumulate in fp32 (wider in gemm.ts), rounding once. reduce_sum accumulates in fp32 ' +
      "and rounds once, the corpus convention; compile option reduceSumAccumulation: 'fp16' takes the rule's conservative " +
      'reading instead and rounds the running sum to fp16 after every add.',
    enable: ALWAYS_ON,
  },
  'io-packed-read': {
    how: 'run() reads each input as dense row-major data of the declared shape from byte 0 and writes outputs likewise; longer buffers are fine, the extra bytes are neither read nor written.',
    enable: ALWAYS_ON,
  },
  'blob-weights-baked': {
    how: 'compileSimProgram decodes every BLOBFILE constant into its own arrays; later changes to the weights map or its bytes do not reach a compiled executable.',
    enable: ALWAYS_ON,
  },
  'rt-compile-budget': {
    how: 'The device (device/device.ts) counts compiles of every backend, cache hits excluded, and refuses those past the limit (119) with a CompileBudgetError.',
    enable: ALWAYS_ON,
  },
};

/** The behaviour settings of a program compiled for `chip`. */
export function behaviourSettingsFor(
  chip: ChipFamily,
  options: { narrowReduceSum?: boolean } = {},
): BehaviourSettings {
  const settings: BehaviourSettings = {
    ignoreAttentionMask: false,
    matmulInfinityThreshold: undefined,
    widthSliceSaturationLimit: undefined,
    narrowReduceSum: options.narrowReduceSum ?? false,
  };
  for (const id of SIMULATED_RULE_IDS) {
    const behaviour = SIMULATED_BEHAVIOURS[id];
    if (behaviour === undefined)
      throw new Error(
        `the simulator has no behaviour for rule '${id}' (rule table and simulator drifted apart)`,
      );
    const rule = getRule(id);
    if (ruleAppliesTo(rule, chip)) behaviour.enable(settings, rule, chip);
  }
  return settings;
}

/** Replaces every element with |v| >= threshold by ±inf (its sign); NaN stays NaN. */
export function saturateToInfinity(values: Float32Array, threshold: number, inclusive: boolean): void {
  runSimOp(
    'saturateToInfinity',
    values,
    (ops) => ops.saturateToInfinity(values, threshold, inclusive),
    () => saturateToInfinityTwin(values, threshold, inclusive),
  );
}

export function saturateToInfinityTwin(values: Float32Array, threshold: number, inclusive: boolean): void {
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    const magnitude = Math.abs(v);
    if (inclusive ? magnitude >= threshold : magnitude > threshold)
      values[i] = v > 0 ? Number.POSITIVE_INFINITY : Number.NEGATIVE_INFINITY;
  }
}
