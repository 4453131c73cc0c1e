/**
 * The ANE rule table: every rule of reference/ane-quirks.md as data, restated in this project's words.
 *
 * One place per rule: the static checks of `rule-checks.ts` (enforcement 'mil-check'), the simulator's
 * hardware behaviour (enforcement 'simulator', registered against `SIMULATED_RULE_IDS`), the graph
 * IR's constraint checker (enforcement 'ir') and the generated `RULES.md` all read this table.
 *
 * Chips: M1 = A13 capability family, M2 = A14, M3 = A15, M4 and M5 = A16. A rule measured on some
 * chips and unmeasured on the rest applies to every chip (`chipNote` says where it was measured);
 * a rule restricted to a list of chips is one the reference reports absent on the others.
 */

export type ChipFamily = 'M1' | 'M2' | 'M3' | 'M4' | 'M5';

/** Oldest first; a capability "from A15" is `chipAtLeast(chip, 'M3')`. */
export const CHIP_FAMILIES: readonly ChipFamily[] = ['M1', 'M2', 'M3', 'M4', 'M5'];

export const DEFAULT_CHIP: ChipFamily = 'M4';

export type RuleKind =
  /** The compiler (or parser) refuses the program. */
  | 'compile-reject'
  /** The program compiles and runs but the hardware computes something else than MIL says. */
  | 'silent-hardware-behaviour'
  /** Loading or evaluating fails, or the process becomes unstable. */
  | 'runtime-failure'
  /** Correct results, much slower. */
  | 'performance'
  /** A recipe or design rule; breaking it has no single hardware symptom. */
  | 'advice';

export type RuleEnforcement =
  /** A static check on the parsed MIL program in `rule-checks.ts`. */
  | 'mil-check'
  /** The simulator reproduces the hardware behaviour at run time. */
  | 'simulator'
  /** The graph IR's constraint checker or lowering (before MIL exists). */
  | 'ir'
  /** No program-visible condition this code can check or emulate; documentation only. */
  | 'documented';

export type RuleSeverity = 'error' | 'warning';

export interface AneRule {
  /** Stable kebab-case id: the reference id with its dot replaced, e.g. `op-runtime-weight-conv`. */
  readonly id: string;
  /**
   * The id in reference/ane-quirks.md, e.g. `op.runtime-weight-conv`; `ir.<name>` for the rules only
   * the graph IR can see (their `source` starts with `IR_ONLY_SOURCE`).
   */
  readonly referenceId: string;
  readonly title: string;
  /** When the rule is broken, in words. */
  readonly condition: string;
  readonly chips: 'all' | readonly ChipFamily[];
  /** Where the rule was measured or claimed, when that is narrower than `chips`. */
  readonly chipNote?: string;
  readonly kind: RuleKind;
  /** What the hardware does when the rule is broken (a sentence). */
  readonly symptom: string;
  /** What to do instead (a sentence). */
  readonly fix: string;
  /** The reference section and the upstream evidence it cites. */
  readonly source: string;
  /** Set when the reference marks the rule CONFLICT: what the sources disagree on. */
  readonly conflict?: string;
  readonly enforcement: RuleEnforcement;
  /** Overrides the severity implied by `kind` (e.g. an unconfirmed claim is only a warning). */
  readonly severity?: RuleSeverity;
  /** The rule's threshold, per chip family when it differs between families. */
  readonly limit?: number | Readonly<Record<ChipFamily, number>>;
  /** For enforcement 'simulator': what the simulator must do. */
  readonly emulation?: string;
}

type RuleEntry = Omit<AneRule, 'id' | 'source'> & { readonly upstream: string };

const QUIRKS = 'reference/ane-quirks.md';

function rule(entry: RuleEntry): AneRule {
  const { upstream, ...rest } = entry;
  return {
    id: entry.referenceId.replace('.', '-'),
    source: `${QUIRKS} \`${entry.referenceId}\` (${upstream})`,
    ...rest,
  };
}

/** `source` prefix of the rules that are not in reference/ane-quirks.md: only the graph IR can see them. */
export const IR_ONLY_SOURCE = 'ane-ir (IR-only)';

type IrOnlyEntry = Omit<AneRule, 'id' | 'source' | 'enforcement'> & { readonly basis: string };

/** A rule the graph IR enforces that no MIL text shows (it is about graphs, kernels or declared bounds). */
function irOnlyRule(entry: IrOnlyEntry): AneRule {
  const { basis, ...rest } = entry;
  return {
    id: entry.referenceId.replace('.', '-'),
    source: `${IR_ONLY_SOURCE}: ${basis}`,
    enforcement: 'ir',
    ...rest,
  };
}

/** Whether a rule is one only the graph IR can see (not in reference/ane-quirks.md). */
export function isIrOnlyRule(rule: AneRule): boolean {
  return rule.source.startsWith(IR_ONLY_SOURCE);
}

const SPATIAL_CAP = { M1: 16384, M2: 16384, M3: 16384, M4: 65536, M5: 65536 } as const;

/** Ops the ANE compiles only from a capability family on (`op.family-floors`): op -> oldest chip. */
export const OP_FAMILY_FLOORS: Readonly<Record<string, ChipFamily>> = {
  sin: 'M3',
  cos: 'M3',
  crop_resize: 'M2',
  resample: 'M2',
  affine: 'M2',
  gather_nd: 'M2',
  dropout: 'M3',
  random_uniform: 'M3',
  reduce_argmin: 'M3',
  topk: 'M2',
  argsort: 'M2',
};

/** MIL ops with no ANE path on any chip (`op.unsupported`; `reduce_prod` has its own rule). */
export const ANE_UNSUPPORTED_OPS: readonly string[] = [
  'non_zero',
  'sliding_windows',
  'logical_and',
  'logical_or',
  'logical_xor',
  'acos',
  'acosh',
  'asin',
  'asinh',
  'atanh',
  'cosh',
  'sinh',
  'tan',
  'mod',
  'one_hot',
  'scatter',
  'scatter_along_axis',
  'scatter_nd',
  'band_part',
  'shape',
  'reverse_sequence',
  'make_list',
  'list_length',
  'list_read',
  'list_write',
  'list_gather',
  'list_scatter',
  'random_bernoulli',
  'random_categorical',
  'random_normal',
  'constexpr_cast',
  'lstm',
  'gru',
  'rnn',
  'cond',
  'while_loop',
];

/** Ops that run as a software fallback on M1 (`op.resize-m1`). */
export const M1_SOFTWARE_RESIZE_OPS: readonly string[] = [
  'resize',
  'resize_bilinear',
  'resize_nearest_neighbor',
  'upsample_bilinear',
  'upsample_nearest_neighbor',
];

/** Parameters the ANE text path needs spelled out (`emit.explicit-params`; gelu and concat have their own rules). */
export const REQUIRED_EXPLICIT_PARAMS: Readonly<Record<string, readonly string[]>> = {
  log: ['epsilon'],
  reduce_sum: ['axes', 'keep_dims'],
  reduce_mean: ['axes', 'keep_dims'],
  reduce_max: ['axes', 'keep_dims'],
  reduce_min: ['axes', 'keep_dims'],
  reduce_prod: ['axes', 'keep_dims'],
  reduce_l1_norm: ['axes', 'keep_dims'],
  reduce_l2_norm: ['axes', 'keep_dims'],
  reduce_log_sum: ['axes', 'keep_dims'],
  reduce_log_sum_exp: ['axes', 'keep_dims'],
  reduce_sum_square: ['axes', 'keep_dims'],
  reduce_argmax: ['axis', 'keep_dims'],
  reduce_argmin: ['axis', 'keep_dims'],
  conv: ['pad_type', 'pad', 'strides', 'dilations', 'groups'],
  conv_transpose: ['pad_type', 'pad', 'strides', 'dilations', 'groups'],
  avg_pool: ['kernel_sizes', 'strides', 'pad_type', 'pad', 'ceil_mode', 'exclude_padding_from_average'],
  max_pool: ['kernel_sizes', 'strides', 'pad_type', 'pad', 'ceil_mode'],
  l2_pool: ['kernel_sizes', 'strides', 'pad_type', 'pad', 'ceil_mode'],
};

export const ANE_RULES: readonly AneRule[] = [
  // ---- emit: MIL text and parse rules ----
  rule({
    referenceId: 'emit.program-skeleton',
    title: 'Program skeleton',
    condition:
      'The text is not `program(1.3)` with a buildInfo line and exactly one `func main<ios18>`, or a statement lacks a unique `name` attribute.',
    chips: 'all',
    kind: 'compile-reject',
    symptom: 'The parser rejects the program (InvalidMILProgram).',
    fix: 'Emit exactly one `func main<ios18>` in `program(1.3)` with the fixed buildInfo line (devices add `DEFAULT_BUILD_INFO_LINE` when it is missing), and give every statement a unique `[name=string("...")]`.',
    upstream: 'ANEForge docs/mil-primer.md; maderix/ANE training/stories_mil.h; Orion compiler/codegen.m',
    enforcement: 'mil-check',
  }),
  rule({
    referenceId: 'emit.buildinfo-version',
    title: 'buildInfo compiler version',
    condition: 'The `coremlc-component-MIL` value in buildInfo differs from the host compiler version.',
    chips: 'all',
    kind: 'compile-reject',
    severity: 'warning',
    symptom:
      'Possibly a parse or compile rejection; not observed by projects that emit a fixed version string.',
    fix: 'Emit the fixed 3510.2.1 / 3505.4.1 buildInfo dict that compiles on macOS 15 to 26.5; allow an override probed from the host and run the conformance corpus per OS.',
    upstream: 'ANEForge docs/mil-primer.md; maderix/ANE training/stories_mil.h; Orion compiler/codegen.m',
    conflict:
      'ANEForge says the version must match the host compiler; maderix/ANE and Orion compile with fixed strings across macOS 15 to 26.5.',
    enforcement: 'documented',
  }),
  rule({
    referenceId: 'emit.scalar-syntax',
    title: 'Shorthand scalar literals',
    condition:
      'Shorthand scalars (`fp16(0.5)`, `int32(1)`, `string("x")`) are used outside `program(1.3)`, or the verbose `tensor<T, []>(v)` form is mixed into 1.3 text.',
    chips: 'all',
    chipNote: 'one report claims M1/M2 need program(1.0) with verbose scalars',
    kind: 'compile-reject',
    symptom: 'The parser rejects the program.',
    fix: 'Emit shorthand scalars in `program(1.3)` / `ios18`; keep a verbose `program(1.0)` / `ios16` dialect behind a hardware probe.',
    upstream: 'coremltools test_weights.py; maderix/ANE PR #6, issue #3; ANEForge aneforge/_compile.py',
    conflict:
      'maderix/ANE PR #6 (M1 Pro) says shorthand works only on M4; M1 Pro/Max runs (issue #3) and ANEForge on M1 use shorthand successfully.',
    enforcement: 'documented',
  }),
  rule({
    referenceId: 'emit.explicit-params',
    title: 'Every parameter spelled out',
    condition:
      'An op leaves a parameter to its coremltools default: `log` without `epsilon`, a reduction without `axes`/`keep_dims`, conv or pool without `pad_type`, `pad`, `strides`, `dilations`, `groups` (pools: `kernel_sizes`, `ceil_mode`, avg `exclude_padding_from_average`).',
    chips: 'all',
    kind: 'compile-reject',
    symptom: 'The parser rejects the program ("Missing epsilon on log").',
    fix: 'Write every parameter of the op, each as a named const.',
    upstream: 'ANEForge docs/mil-primer.md, aneforge/_compile.py; Orion README',
    enforcement: 'mil-check',
  }),
  rule({
    referenceId: 'emit.gelu',
    title: 'gelu needs an explicit mode',
    condition: '`gelu` is emitted without a `mode` parameter.',
    chips: 'all',
    chipNote: 'rejection seen on M4 (Orion); gelu with mode compiles on M1 to M5 (ANEForge)',
    kind: 'compile-reject',
    symptom: 'Compilation fails (ANECCompile() FAILED).',
    fix: 'Pass `mode` as a named string const (e.g. "EXACT"); keep a tanh-approximation decomposition behind a probe and make the VJP match the emitted form.',
    upstream:
      'Orion docs/ane_constraints.md #10; ANEForge aneforge/_compile.py `_e_gelu`, docs/op-catalog.md',
    conflict:
      'Orion says gelu is not a valid op at all; ANEForge runs gelu(mode="EXACT") on M1 to M5. Orion most likely omitted mode.',
    enforcement: 'mil-check',
  }),
  rule({
    referenceId: 'emit.concat',
    title: 'concat spells axis and interleave=false',
    condition: '`concat` lacks its `axis` or `interleave` parameter, or passes `interleave=true`.',
    chips: 'all',
    chipNote: 'rejection of concat without interleave seen on M4 Max (Orion)',
    kind: 'compile-reject',
    symptom: 'Compilation fails (ANECCompile() FAILED: err=()).',
    fix: 'Emit `axis` and `interleave = bool(false)` as named consts; fall back to multi-output programs if a concat still fails.',
    upstream:
      'Orion docs/ane_constraints.md #1; maderix/ANE training/training_dynamic/mil_dynamic.h; ANEForge aneforge/_compile.py `_e_concat`, docs/capabilities.md',
    conflict:
      'Orion says concat fails; maderix/ANE (M3 to M5) and ANEForge (M1 to M5) run 2- to 9-input concats with an explicit interleave=false; an ANEForge doc says concat takes exactly 2 inputs, contradicted by its own code.',
    enforcement: 'mil-check',
  }),
  rule({
    referenceId: 'emit.bool-const-args',
    title: 'Op arguments as named consts',
    condition:
      'A bool, integer or string op argument is written inline (`transpose_y = bool(true)`) instead of referring to a named const.',
    chips: ['M4'],
    chipNote:
      'rejection reported on M4 (Orion); inline literals compile on the e5rt route and in maderix/ANE tests',
    kind: 'compile-reject',
    symptom: 'The parser rejects the program.',
    fix: 'Declare every bool, integer and string argument as a named `const` and pass its name (accepted everywhere).',
    upstream: 'Orion README, compiler/codegen.m; ANEForge aneforge/_compile.py `_e_matmul`',
    conflict:
      'Orion rejects inline literals; ANEForge (e5rt) and maderix/ANE tests write them inline and compile.',
    enforcement: 'mil-check',
  }),
  rule({
    referenceId: 'emit.conv-bias',
    title: 'No conv bias',
    condition: '`conv` is given a `bias` argument.',
    chips: 'all',
    kind: 'compile-reject',
    symptom: 'Compilation fails.',
    fix: 'Add the bias with a separate `add(conv, bias[1,C,1,1])`.',
    upstream:
      'Orion README, compiler/pipeline.c; ANEForge aneforge/_compile.py `_e_conv`; coremltools iOS15/conv.py',
    enforcement: 'mil-check',
  }),
  rule({
    referenceId: 'emit.live-outputs',
    title: 'Returned names are live body values',
    condition:
      'The return tuple names a value that no statement of the body defines (an unknown name or a bare parameter).',
    chips: 'all',
    kind: 'compile-reject',
    symptom: 'The program is rejected (InvalidMILProgram).',
    fix: 'Return only values computed in the body; run dead-code elimination after choosing the outputs.',
    upstream: 'Orion README',
    enforcement: 'mil-check',
  }),
  rule({
    referenceId: 'emit.identifiers',
    title: 'Identifier spelling and uniqueness',
    condition:
      'A parameter or value name does not match `[A-Za-z_][A-Za-z0-9_@]*`, or is declared twice in the function.',
    chips: 'all',
    kind: 'compile-reject',
    symptom: 'The parser rejects the program.',
    fix: 'Generate names from a sanitised counter so they are valid and unique.',
    upstream: 'coremltools mlmodel/format/MIL.proto',
    enforcement: 'mil-check',
  }),
  rule({
    referenceId: 'emit.binary-dtype',
    title: 'Binary operands share a dtype',
    condition:
      'An elementwise binary op (`add`, `sub`, `mul`, `real_div`, `pow`, `maximum`, `minimum`, comparisons) gets `x` and `y` of different dtypes.',
    chips: 'all',
    kind: 'compile-reject',
    symptom: 'The parser rejects the program.',
    fix: 'Cast one operand explicitly first (compute is fp16 anyway).',
    upstream: 'coremltools iOS15/elementwise_binary.py',
    enforcement: 'mil-check',
  }),
  rule({
    referenceId: 'emit.constexpr-params',
    title: 'constexpr_* parameters in the attribute block',
    condition:
      'A `constexpr_*` op passes its parameters inside the call parentheses instead of the attribute block.',
    chips: 'all',
    kind: 'compile-reject',
    symptom: 'The parser rejects the program.',
    fix: 'Use the form that compiled: `constexpr_affine_dequantize()[axis=..., quantized_data=..., scale=..., zero_point=...]` with empty parentheses.',
    upstream:
      'coremltools converters/mil/backend/mil/load.py; maderix/ANE ane_int8_bench.m; ANEForge aneforge/_compile.py',
    enforcement: 'mil-check',
  }),
  rule({
    referenceId: 'emit.linear-const-weight',
    title: 'linear and conv_transpose need a const weight',
    condition:
      'The `weight` of `linear` or `conv_transpose` is not a const (e.g. a function input or computed value).',
    chips: 'all',
    kind: 'compile-reject',
    symptom: 'The program is rejected at parse or compile time.',
    fix: 'For weights passed as data use `matmul`; keep `linear` for baked, frozen weights.',
    upstream: 'coremltools iOS15/linear.py, iOS15/conv.py',
    enforcement: 'mil-check',
  }),
  rule({
    referenceId: 'emit.pow-const-base2',
    title: 'pow with constant base 2',
    condition: '`pow(x=2, y)` with a constant base of 2.',
    chips: 'all',
    chipNote: 'seen on the Core ML runtime; unverified on the direct ANE route',
    kind: 'silent-hardware-behaviour',
    severity: 'warning',
    symptom: 'The Core ML runtime returns y² instead of 2^y, silently.',
    fix: 'Emit `exp2(y)` or `exp(y·ln2)`; never `pow(2, y)`.',
    upstream: 'coremltools passes/decompose_const_base2_pow.py',
    enforcement: 'mil-check',
  }),
  rule({
    referenceId: 'emit.square-opcode',
    title: 'square fused with a nonlinearity',
    condition: '`square` feeds a nonlinearity and its last-axis width W has `W % 128 > 64`.',
    chips: 'all',
    chipNote: 'measured on M5',
    kind: 'compile-reject',
    symptom: 'Compilation fails.',
    fix: 'Emit `mul(x, x)` instead of `square`.',
    upstream: 'ANEForge aneforge/_capabilities.py `square_opcode_tiling`, aneforge/_compile.py `_e_square`',
    enforcement: 'mil-check',
  }),
  rule({
    referenceId: 'emit.mul-reduce-zero',
    title: 'Reduction output times zero',
    condition:
      '`mul` of a `reduce_sum`/`reduce_mean` output by a constant that is zero in fp16 (including values such as 1e-30 that underflow).',
    chips: 'all',
    chipNote: 'chip not stated by the source',
    kind: 'compile-reject',
    symptom: 'Compilation fails (ANECCompile).',
    fix: 'Build zeros as `sub(t, t)` and constants as `(t - t) + c`; fold a loss-scale seed into an additive constant.',
    upstream: 'ANEForge docs/mil-primer.md, docs/developer/autograd.md, aneforge/autograd.py `_const_like`',
    enforcement: 'mil-check',
  }),
  rule({
    referenceId: 'emit.wide-row-concat',
    title: 'Wide-row concat',
    condition:
      'A large tensor is reshaped into one very wide row (e.g. `[1, 100352]`) and concatenated with rows of other widths.',
    chips: 'all',
    chipNote: 'chip not stated by the source',
    kind: 'compile-reject',
    symptom: 'The compiler crashes (segfault).',
    fix: 'Keep tensors in their natural 2-D width and stack along axis 0, or use separate outputs or programs.',
    upstream: 'ANEForge docs/developer/autograd.md `_stack3`, aneforge/autograd.py `Trainer`',
    enforcement: 'ir',
  }),
  rule({
    referenceId: 'emit.constexpr-routing',
    title: 'constexpr outputs are not routable',
    condition:
      'A `constexpr_*` output is reshaped, or a `constexpr_blockwise_shift_scale` output is used as a conv or matmul operand.',
    chips: 'all',
    chipNote: 'measured on M1 and M5',
    kind: 'compile-reject',
    symptom: 'Compilation fails ("Not implemented").',
    fix: "Give LUT indices the weight's rank already; pass blockwise output through `add(+0)` to a dense fp16 tensor; prefer per-channel affine int8 for conv and matmul weights.",
    upstream: 'ANEForge docs/developer/compile-pipeline.md, aneforge/_compile.py `_Emitter.weight`',
    enforcement: 'mil-check',
  }),

  // ---- dim: shape limits ----
  rule({
    referenceId: 'dim.rank',
    title: 'Rank at most 5',
    condition: 'A tensor, or the `shape` argument of `reshape`/`expand_dims`/`stack`, has rank above 5.',
    chips: 'all',
    kind: 'compile-reject',
    symptom: 'Compilation fails ("Rank of the shape parameter must be between 0 and 5").',
    fix: 'Keep every tensor at rank 5 or less; decompositions that need rank 6 are unavailable.',
    upstream: 'ANEForge docs/developer/op-quirks.md, docs/developer/optimizer-and-cost.md, aneforge/graph.py',
    enforcement: 'mil-check',
    limit: 5,
  }),
  rule({
    referenceId: 'dim.transpose-matmul-rank',
    title: 'transpose into matmul at rank 5',
    condition: 'A `transpose` whose output has rank 5 or more feeds a `matmul`.',
    chips: 'all',
    chipNote: 'measured on M5',
    kind: 'compile-reject',
    symptom: 'Compilation fails.',
    fix: 'Keep transpose-then-matmul chains at rank 4 or less.',
    upstream: 'ANEForge docs/developer/capabilities-and-targets.md `rank5_transpose_matmul`',
    enforcement: 'mil-check',
    limit: 4,
  }),
  rule({
    referenceId: 'dim.axis-range',
    title: 'Axis extents in [1, 65536]',
    condition:
      'A tensor has a zero-size axis, or a batch axis (axis 0 of a rank-4 tensor) above 65536. Channel and spatial axes have their own rules.',
    chips: 'all',
    kind: 'compile-reject',
    symptom:
      'The parser rejects the program (Core ML: "N[1-65536] D[1-16384] C[1-65536] H[1-16384] W[1-16384]").',
    fix: 'Guard shapes when they are built: every extent at least 1 and at most 65536.',
    upstream: 'ANEForge docs/mil-primer.md, docs/developer/op-quirks.md; FluidAudio issue #121',
    enforcement: 'mil-check',
    limit: 65536,
  }),
  rule({
    referenceId: 'dim.spatial',
    title: 'Spatial extent cap per family',
    condition:
      'H or W of a rank-4 tensor, or any axis of a tensor of another rank, exceeds the family cap: 16384 on M1 to M3, 65536 on M4/M5.',
    chips: 'all',
    chipNote: '16385 rejects on M1 and M2 (M3 assumed); 65536 measured on M5 (M4 by family)',
    kind: 'compile-reject',
    symptom: 'Compilation fails.',
    fix: 'Tile long axes, or move long sequence or feature axes onto the channel axis (axis 1 of a rank-4 tensor).',
    upstream: 'ANEForge aneforge/_targets.py `_LIMITS`, docs/capabilities.md, docs/cross-chip.md',
    enforcement: 'mil-check',
    limit: SPATIAL_CAP,
  }),
  rule({
    referenceId: 'dim.channel',
    title: 'Channel extent at most 65536',
    condition: 'Axis 1 of a rank-4 tensor exceeds 65536.',
    chips: 'all',
    kind: 'compile-reject',
    symptom: 'Compilation fails (65537 rejects).',
    fix: 'Split channels beyond 65536 across ops or kernels.',
    upstream: 'ANEForge aneforge/_targets.py',
    enforcement: 'mil-check',
    limit: 65536,
  }),
  rule({
    referenceId: 'dim.transpose-extent',
    title: 'Transposed extents',
    condition: 'An axis moved by `transpose` exceeds 16384 on M1 to M3 or 65536 on M4/M5.',
    chips: 'all',
    kind: 'compile-reject',
    symptom: 'Compilation fails.',
    fix: 'Keep every axis a transpose moves within 16384 before A16 and 65536 on A16 (safe under both readings).',
    upstream: 'ANEForge aneforge/_targets.py, docs/op-catalog.md, docs/cross-chip.md',
    conflict:
      "ANEForge's target table allows 8,388,607 before A16 and is effectively unbounded on A16; its op catalog caps transposes at 16384 (to A15) and 65536 (M5).",
    enforcement: 'mil-check',
    limit: SPATIAL_CAP,
  }),
  rule({
    referenceId: 'dim.internal-extents',
    title: 'Limits inside composite lowerings',
    condition:
      "An internal reshape of a composite exceeds the caps, e.g. group_norm's `[1, G, C/G, H·W]` with `max(C/G, H·W) > 65536` or H·W over the spatial cap.",
    chips: 'all',
    kind: 'compile-reject',
    symptom: 'Compilation fails.',
    fix: 'Expand composites before checking limits; use more groups or smaller maps.',
    upstream: 'ANEForge aneforge/graph.py `group_norm`, aneforge/_targets.py `_internal_axis_oversize`',
    enforcement: 'ir',
  }),
  rule({
    referenceId: 'dim.conv-kernel-width',
    title: 'Conv kernel width cap',
    condition:
      'A `conv` or `conv_transpose` kernel is wider (kW, last weight axis) than 13 on M1 to M3 or 15 on M4/M5.',
    chips: 'all',
    chipNote: '14 rejects on M1, 16 on A16; M2/M3 unmeasured and treated as 13',
    kind: 'compile-reject',
    symptom: 'Compilation fails ("Not implemented").',
    fix: 'Route wider kernels through space_to_depth, FFT or im2col; 1-wide kernels are unaffected.',
    upstream: 'ANEForge aneforge/_targets.py, docs/developer/op-quirks.md, docs/capabilities.md',
    enforcement: 'mil-check',
    limit: { M1: 13, M2: 13, M3: 13, M4: 15, M5: 15 },
  }),
  rule({
    referenceId: 'dim.pool-window',
    title: 'Pool window cap',
    condition: 'An `avg_pool`/`max_pool`/`l2_pool` kernel size exceeds 29 on M1 or 31 on M2 and later.',
    chips: 'all',
    kind: 'compile-reject',
    symptom: 'Compilation fails (Core ML falls back to the CPU).',
    fix: 'Keep pool windows at most 13 with stride at most 2 unless probed on the target chip.',
    upstream: 'ANEForge docs/op-catalog.md; hollance docs/unsupported-layers.md',
    conflict: 'Core ML-era documentation says pools with kernel above 13 or stride above 2 leave the ANE.',
    enforcement: 'mil-check',
    limit: { M1: 29, M2: 31, M3: 31, M4: 31, M5: 31 },
  }),
  rule({
    referenceId: 'dim.static-shapes',
    title: 'Static shapes only',
    condition: 'A shape has a symbolic dimension.',
    chips: 'all',
    kind: 'compile-reject',
    symptom: 'Symbolic dims parse but fail to compile; every new shape is a new compile.',
    fix: 'Pad to fixed shapes or a few length buckets and cache one program per bucket (`parseProgram` already refuses symbolic dimensions).',
    upstream: 'ANEForge docs/capabilities.md, docs/dispatch.md; Orion core/bucket.h, docs/m2_benchmarks.md',
    enforcement: 'documented',
  }),
  rule({
    referenceId: 'dim.conv-32000-cin',
    title: 'Very wide conv input',
    condition: 'A `conv` has 32000 or more input channels (32000 output channels compile).',
    chips: 'all',
    chipNote: 'seen on M3 to M5 (maderix/ANE) and M-series (ANEgpt)',
    kind: 'compile-reject',
    symptom: 'Compilation fails, although the extent is under the channel cap (a size or tiling limit).',
    fix: 'Split the contraction over input channels, or run the classifier backward on the CPU.',
    upstream: 'maderix/ANE training/ane_classifier.h, train_large_ane.m; ANEgpt README',
    enforcement: 'mil-check',
    limit: 31999,
  }),
  rule({
    referenceId: 'dim.m3pro-channel-sweep',
    title: 'M3 Pro channel-count anomaly',
    condition: 'A 1x1-conv program with fp32 I/O and casts uses a channel count other than 512 on an M3 Pro.',
    chips: ['M3'],
    chipNote: 'M3 Pro only; M3 Max/Ultra trained at 768 and 2048 channels',
    kind: 'compile-reject',
    severity: 'warning',
    symptom: 'Compilation failed for every channel count but 512 in one sweep.',
    fix: 'Probe the channel counts actually used with the conformance corpus.',
    upstream: 'maderix/ANE benchmarks/ANE_BENCHMARK_REPORT.md',
    enforcement: 'documented',
  }),

  // ---- dtype ----
  rule({
    referenceId: 'dtype.compute',
    title: 'Compute is fp16',
    condition:
      'An op other than `const`, `constexpr_*` or `cast` produces fp32, fp64, bf16, int32 or int64 values.',
    chips: 'all',
    kind: 'compile-reject',
    symptom: 'The program is rejected (int32 compute: "not implemented"; bf16 has no path).',
    fix: 'Compute in fp16; fp32 only as a `cast` intermediate; keep fp32 masters on the host.',
    upstream: 'ANEForge docs/capabilities.md, aneforge/_capabilities.py, aneforge/graph.py `_check_dtype`',
    enforcement: 'mil-check',
  }),
  rule({
    referenceId: 'dtype.io',
    title: 'Function I/O dtypes',
    condition:
      'A function input or output is neither fp16, fp32, int8, uint8, int16 nor uint16 (bool and fp32 have their own rules).',
    chips: 'all',
    chipNote: 'measured on the e5rt route, where fp32 I/O is also rejected',
    kind: 'compile-reject',
    symptom: 'The parser rejects the program.',
    fix: 'Use fp16 I/O for everything; uint8 input plus an in-graph `cast` for byte data.',
    upstream:
      'ANEForge docs/capabilities.md, docs/mil-primer.md; coremltools passes/adjust_io_to_supported_types.py',
    enforcement: 'mil-check',
  }),
  rule({
    referenceId: 'dtype.fp32-io-in-memory',
    title: 'fp32 I/O with in-graph cast',
    condition: 'A function input or output is fp32 (with casts to and from fp16 inside the graph).',
    chips: ['M1', 'M2'],
    chipNote: 'works on M3 to M5 on the in-memory route',
    kind: 'compile-reject',
    symptom: 'Compilation fails on M1/M2; one report says fp32 surfaces read back as zeros.',
    fix: 'Use fp16 I/O everywhere (also faster); use fp32 only inside the graph.',
    upstream:
      'maderix/ANE PR #6, PR #40, benchmarks/ANE_BENCHMARK_REPORT.md; Orion docs/ane_api_reference.md; ANEForge docs/op-catalog.md',
    conflict:
      'maderix/ANE reports M1/M2 failures ("M1/M2 do not support cast"); ANEForge lists fp16<->fp32 cast as native on M1 for internal casts; PR #40 reports fp32 surfaces producing zeros.',
    enforcement: 'mil-check',
  }),
  rule({
    referenceId: 'dtype.cast-int32',
    title: 'No cast to int32 on M1',
    condition: '`cast` with `dtype = "int32"`.',
    chips: ['M1'],
    kind: 'compile-reject',
    symptom: 'Compilation fails.',
    fix: 'Keep index math in fp16 (exact up to 2048) or on the host.',
    upstream: 'ANEForge docs/op-catalog.md',
    enforcement: 'mil-check',
  }),
  rule({
    referenceId: 'dtype.bool',
    title: 'No bool I/O',
    condition: 'A function input or output has dtype bool.',
    chips: 'all',
    kind: 'compile-reject',
    symptom: 'The parser rejects the program; bool tensors exist only between a comparison and `select`.',
    fix: 'Pass masks as fp16 0/1 or additive -1e4 tensors; keep a comparison in the kernel of the selects that read it (the partitioner does, and runs any other bool on the host).',
    upstream: 'ANEForge docs/mil-primer.md, docs/capabilities.md',
    enforcement: 'mil-check',
  }),

  // ---- op: availability and behaviour ----
  rule({
    referenceId: 'op.family-floors',
    title: 'Ops available from a capability family',
    condition: `An op is used on a chip older than its floor: ${Object.entries(OP_FAMILY_FLOORS)
      .map(([op, chip]) => `${op} ${chip}+`)
      .join(', ')}.`,
    chips: 'all',
    kind: 'compile-reject',
    symptom: 'Compilation fails (topk/argsort pass validation and fail at codegen on M1).',
    fix: 'Consult the per-family op table; decompose sin/cos into fp16 polynomials on M1/M2; use host RNG for dropout before A15.',
    upstream: 'ANEForge aneforge/_targets.py `_OP_FLOOR`, docs/capabilities.md, docs/op-catalog.md',
    conflict:
      'The target table puts GlobalArgMin/Max at A15+, but the argmax netplist bridge works on M1; argmax is not gated here.',
    enforcement: 'mil-check',
  }),
  rule({
    referenceId: 'op.unsupported',
    title: 'Ops with no ANE path',
    condition: `The program uses an op the ANE has on no chip: ${ANE_UNSUPPORTED_OPS.join(', ')} (and bitwise ops).`,
    chips: 'all',
    kind: 'compile-reject',
    symptom:
      'Compilation fails ("Unsupported", "not supported on any backend") or Core ML falls back to the CPU.',
    fix: 'Decompose (unroll recurrences, precompute masks on the host, logical ops via min/max) or run the op on the host.',
    upstream: 'ANEForge docs/op-catalog.md, docs/capabilities.md; hollance docs/unsupported-layers.md',
    enforcement: 'mil-check',
  }),
  rule({
    referenceId: 'op.nan',
    title: 'NaN does not propagate',
    condition: 'A computation produces NaN (0/0, inf - inf).',
    chips: 'all',
    kind: 'silent-hardware-behaviour',
    symptom: 'The ANE returns other values where NaN would be; `nan_to_num` is broken.',
    fix: 'Avoid 0/0 by construction and check read-back values for non-finite numbers on the host.',
    upstream: 'ANEForge docs/capabilities.md, aneforge/_capabilities.py',
    enforcement: 'documented',
  }),
  rule({
    referenceId: 'op.gather',
    title: 'gather',
    condition: 'The program uses `gather` or `gather_along_axis`.',
    chips: 'all',
    kind: 'compile-reject',
    severity: 'warning',
    symptom: 'Compilation fails or falls back to the CPU; there is no VJP either.',
    fix: 'For static indices use a one-hot matmul (bit-exact) or `slice_by_size` + `concat` off the last axis; build embedding one-hots on the host.',
    upstream:
      'ANEForge aneforge/_capabilities.py, docs/op-catalog.md, docs/training.md; hollance docs/unsupported-layers.md',
    conflict:
      "ANEForge's capability probe says native gather is unimplemented; its op catalog says native with a narrow M1 envelope; hollance says unsupported.",
    enforcement: 'mil-check',
  }),
  rule({
    referenceId: 'op.cumsum',
    title: 'cumsum',
    condition: 'The program uses `cumsum`.',
    chips: 'all',
    kind: 'compile-reject',
    severity: 'warning',
    symptom: 'Compilation fails.',
    fix: 'Compute a last-axis cumsum as `x @ triu(ones)` (relative error about 3e-4).',
    upstream:
      'ANEForge docs/capabilities.md, aneforge/_capabilities.py, docs/op-catalog.md, aneforge/graph.py `cumsum`',
    conflict:
      'Two ANEForge sources say native cumsum is unimplemented; its op catalog says it runs as one op on M1.',
    enforcement: 'mil-check',
  }),
  rule({
    referenceId: 'op.reduce-prod',
    title: 'reduce_prod',
    condition: 'The program uses `reduce_prod`.',
    chips: 'all',
    kind: 'compile-reject',
    symptom: 'Compilation fails.',
    fix: 'Use `exp(reduce_sum(log(x)))` for positive x; handle sign and zeros with extra ops.',
    upstream: 'ANEForge aneforge/_capabilities.py',
    enforcement: 'mil-check',
  }),
  rule({
    referenceId: 'op.runtime-weight-conv',
    title: 'conv weight must be constant',
    condition:
      'The `weight` of `conv` is not a const or `constexpr_*` value (e.g. a function input or a computed tensor).',
    chips: 'all',
    kind: 'compile-reject',
    symptom: 'The in-memory compiler rejects the program (InvalidMILProgram).',
    fix: 'Pass trainable weights as data to a `matmul` (a 1x1 conv is a matmul), or lower a trainable conv to im2col + matmul; bake only frozen conv weights.',
    upstream:
      'maderix/ANE training/test_weight_patch.m, issue #47; ANEForge aneforge/graph.py `dynamic_conv`, docs/capabilities.md; coremltools iOS15/conv.py',
    conflict:
      'On e5rt a runtime-weight conv compiles and is correct only at batch 1; coremltools iOS15 allows it unless dilation is not 1.',
    enforcement: 'mil-check',
  }),
  rule({
    referenceId: 'op.conv-transpose-stride',
    title: 'conv_transpose gradients beyond stride 1',
    condition:
      'A conv input gradient is expressed as `conv_transpose` with stride above 1 (no `output_padding`).',
    chips: 'all',
    kind: 'silent-hardware-behaviour',
    symptom: 'Output shape or values are wrong.',
    fix: 'Use stride-1 convs plus pooling for downsampling in trainable graphs.',
    upstream: 'ANEForge aneforge/autograd.py `_vjp_conv`',
    enforcement: 'ir',
  }),
  rule({
    referenceId: 'op.pool-vjp-envelope',
    title: 'Pool backward envelope',
    condition:
      'A pool backward built from upsample/compare has overlapping or padded windows (stride != kernel or pad != 0).',
    chips: 'all',
    kind: 'silent-hardware-behaviour',
    symptom: 'Gradients are wrong; max-pool ties send gradient to every tied cell.',
    fix: 'Restrict trainable pools to stride == kernel and no padding; accept or break ties.',
    upstream: 'ANEForge aneforge/autograd.py `_vjp_avg_pool`, `_vjp_max_pool`',
    enforcement: 'ir',
  }),
  rule({
    referenceId: 'op.sdpa-mil',
    title: 'scaled_dot_product_attention ignores attn_mask',
    condition: '`scaled_dot_product_attention` is given an `attn_mask` (it has no causal flag).',
    chips: 'all',
    kind: 'silent-hardware-behaviour',
    symptom: 'The ANE ignores the mask and computes unmasked attention (same output with or without it).',
    fix: 'Decompose: matmul(Q, Kᵀ), scale, add the mask, softmax, matmul with V (one fused graph with the projections compiles).',
    upstream:
      'coremltools iOS18/transformers.py; Orion docs/ane_constraints.md #6; maderix/ANE training/test_ane_sdpa5.m; ANEForge docs/capabilities.md, docs/op-catalog.md',
    conflict:
      "It reaches the ANE only at heads >= 64, seq >= ~496, d = 64; ANEForge's op catalog lists it native on M1 via matmul + softmax.",
    enforcement: 'simulator',
    emulation:
      'Evaluate `scaled_dot_product_attention` as softmax(Q·Kᵀ/√d)·V and ignore `attn_mask` entirely.',
  }),
  rule({
    referenceId: 'op.sdpa-native-layer',
    title: 'Native SDPA hardware layer',
    condition:
      'The fused SDPA layer is reached through a hand-authored netplist (not MIL) outside S <= 2048, min(Sq, Skv) < 512, batch 1, one shared mask plane.',
    chips: 'all',
    chipNote: 'measured on M1 and M5',
    kind: 'silent-hardware-behaviour',
    symptom: 'Results are garbage (cos ~0.67 at 512x512); per-head masks are mis-applied.',
    fix: 'Do not use it for training; use the MIL decomposition.',
    upstream: 'ANEForge docs/developer/op-quirks.md, docs/developer/bridges.md, aneforge/graph.py `sdpa`',
    enforcement: 'documented',
  }),
  rule({
    referenceId: 'op.fused-attention',
    title: 'Known-good fused attention',
    condition:
      'Attention is lowered other than as QKV 1x1 convs, reshape, matmul, additive mask, softmax, matmul, Wo conv in one graph.',
    chips: 'all',
    chipNote: 'proven on M3 to M5 (maderix/ANE) and M4 (Orion)',
    kind: 'advice',
    symptom: 'No failure; other forms are simply unproven.',
    fix: 'Use this graph as the reference attention lowering.',
    upstream: 'maderix/ANE training/test_full_fused.m, training/stories_mil.h; Orion compiler/patterns.c',
    enforcement: 'documented',
  }),
  rule({
    referenceId: 'op.einsum',
    title: 'einsum forms',
    condition:
      '`einsum` uses an equation other than `nchw,nwhu->nchu` or `chw,whr->chr` (up to renaming), or its second operand is not a const.',
    chips: 'all',
    kind: 'compile-reject',
    symptom: 'Compilation fails.',
    fix: 'Use matmul + transpose.',
    upstream: 'ANEForge aneforge/graph.py `einsum_native`; coremltools iOS15/linear.py',
    enforcement: 'mil-check',
  }),
  rule({
    referenceId: 'op.tile-factors',
    title: 'tile and space_to_batch factors',
    condition:
      'A `tile` rep or `space_to_batch` block factor is not one of 2, 3, 4, 8 (a tile rep of 1 is no repeat).',
    chips: 'all',
    kind: 'compile-reject',
    symptom: 'Compilation fails.',
    fix: 'Compose allowed factors, or repeat with `concat`.',
    upstream: 'ANEForge docs/op-catalog.md, aneforge/graph.py `tile`',
    enforcement: 'mil-check',
  }),
  rule({
    referenceId: 'op.pad-modes',
    title: 'Reflect and symmetric pad on M1',
    condition: '`pad` with mode "reflect" or "symmetric" on M1.',
    chips: ['M1'],
    chipNote: 'native from A14',
    kind: 'performance',
    symptom: 'The pad runs in software on M1: slower, with different rounding.',
    fix: 'Use constant padding (or concat zero borders) in trainable graphs.',
    upstream: 'ANEForge docs/op-catalog.md',
    enforcement: 'mil-check',
  }),
  rule({
    referenceId: 'op.resize-m1',
    title: 'Resize and upsample on M1',
    condition: `One of ${M1_SOFTWARE_RESIZE_OPS.join(', ')} on M1.`,
    chips: ['M1'],
    chipNote: 'native from A14',
    kind: 'silent-hardware-behaviour',
    severity: 'warning',
    symptom: 'The op runs as a software fallback on M1 with different rounding; some modes abort.',
    fix: 'Upsample only by integer nearest factors, validate on M1, or express the upsample as matmul/concat.',
    upstream: 'ANEForge docs/op-catalog.md',
    enforcement: 'mil-check',
  }),
  rule({
    referenceId: 'op.range-1d',
    title: 'range_1d on M1',
    condition: '`range_1d` on M1.',
    chips: ['M1'],
    kind: 'compile-reject',
    symptom: 'Codegen rejects the program.',
    fix: 'Precompute positions and positional encodings on the host as consts or inputs.',
    upstream: 'ANEForge docs/op-catalog.md',
    enforcement: 'mil-check',
  }),
  rule({
    referenceId: 'op.layer-norm-affine',
    title: 'Affine layer_norm',
    condition: '`layer_norm` with `gamma` or `beta`.',
    chips: 'all',
    chipNote: 'chip not measured',
    kind: 'compile-reject',
    symptom: "Apple's compiler rejects every affine form in one harness.",
    fix: 'Emit LayerNorm/RMSNorm from reduce_mean, sub, mul, add eps, rsqrt, mul, add, as every peer does.',
    upstream: 'mil-hwx-compiler README; ANEForge docs/op-catalog.md, aneforge/_compile.py `_e_layer_norm`',
    conflict: "ANEForge's catalog lists layer_norm native, yet its own emitter decomposes it.",
    enforcement: 'mil-check',
  }),
  rule({
    referenceId: 'op.rmsnorm-3matmul-fallback',
    title: 'RMSNorm with three runtime-weight matmuls',
    condition: 'One in-memory kernel fuses RMSNorm with three runtime-weight matmuls.',
    chips: 'all',
    chipNote: 'seen on maderix/ANE hosts',
    kind: 'performance',
    symptom:
      'The kernel silently runs on the CPU (BNNS fallback); RMSNorm with const-weight convs stays on the ANE.',
    fix: 'Split such kernels; verify placement by power rail or timing.',
    upstream: 'maderix/ANE training/training_dynamic/mil_dynamic.h (commits 926f977, c3c5094)',
    enforcement: 'ir',
  }),
  rule({
    referenceId: 'op.m1-runtime-failures-claim',
    title: 'Claimed M1 runtime failures',
    condition: '`reshape`, `transpose`, `concat`, `pad` or `reduce_*` on M1.',
    chips: ['M1'],
    chipNote: 'third-party claim',
    kind: 'runtime-failure',
    severity: 'warning',
    symptom: 'Claimed to fail at run time; contradicted by ANEForge and by maderix/ANE M1 training runs.',
    fix: 'Treat as unconfirmed and keep these ops in the M1 conformance corpus.',
    upstream: 'maderix/ANE issues #47, #3; ANEForge docs/op-catalog.md',
    conflict: 'A third-party M1 report versus ANEForge (all native on M1) and maderix/ANE M1 Pro/Max runs.',
    enforcement: 'documented',
  }),
  rule({
    referenceId: 'op.matmul-k32-claim',
    title: 'Claimed M1 matmul K % 32',
    condition: 'A `matmul` contraction length K is not a multiple of 32 on M1.',
    chips: ['M1'],
    chipNote: 'third-party claim',
    kind: 'silent-hardware-behaviour',
    severity: 'warning',
    symptom: 'Claimed to return zeros silently; ANEForge trains on M1 with K = 9, 784 and 1352.',
    fix: 'Probe on M1; pad K to a multiple of 32 only if confirmed.',
    upstream: 'maderix/ANE issue #47; ANEForge examples/train_mnist_cnn.py, docs/training.md',
    conflict: "A third-party M1 report versus ANEForge's M1 training runs.",
    enforcement: 'documented',
  }),
  rule({
    referenceId: 'op.coreml-era-limits',
    title: 'Core ML-era layer limits',
    condition:
      'Custom layers, LSTM/GRU, gather, dilated conv, some broadcasts, pools above 13 or stride 2, upsampling beyond 2x on the Core ML route.',
    chips: 'all',
    chipNote: 'Core ML route, A12 to A14 era',
    kind: 'performance',
    symptom: 'Core ML runs those layers on the CPU.',
    fix: 'Prefer the broadcasts peers verified; avoid dilated conv and upsampling beyond 2x until probed.',
    upstream:
      'hollance docs/unsupported-layers.md; maderix/ANE training/stories_mil.h; ANEForge aneforge/graph.py',
    conflict: '`[1,C,1,1] x [1,C,1,S]` and `[1,1,S,S] + [1,H,S,S]` broadcasts compile on the direct routes.',
    enforcement: 'documented',
  }),
  rule({
    referenceId: 'op.netplist-only-layers',
    title: 'Netplist-only layers',
    condition:
      'Code assumes native layers (TopK, LRN, MinMaxNorm, ScaledElementWise, BatchToSpace, ...) that only hand-written netplists reach.',
    chips: 'all',
    chipNote: 'measured on M1 and M5',
    kind: 'advice',
    symptom: 'Those layers have narrow envelopes: rejections or silently wrong values outside them.',
    fix: 'Never assume they exist in MIL.',
    upstream: 'ANEForge docs/developer/op-quirks.md, docs/developer/bridges.md',
    enforcement: 'documented',
  }),

  // ---- num: numeric cliffs ----
  rule({
    referenceId: 'num.fp16-range',
    title: 'fp16 overflow becomes ±inf',
    condition: 'An intermediate value exceeds 65504 in magnitude.',
    chips: 'all',
    kind: 'silent-hardware-behaviour',
    symptom: 'The value silently becomes ±inf; relative precision is about 1e-3 everywhere.',
    fix: 'Pre-scale (normalise between products, fold 1/N into weights) and clamp host-to-device writes to ±65504.',
    upstream: 'ANEForge docs/developer/numerics.md; hollance docs/16-bit.md; Orion RESULTS.md',
    enforcement: 'simulator',
    limit: 65504,
    emulation:
      'Round every op result to fp16 (nearest even); magnitudes that round beyond 65504 become ±inf.',
  }),
  rule({
    referenceId: 'num.matmul-output-inf',
    title: 'matmul outputs saturate near 32752',
    condition:
      'A `matmul` output element has true magnitude of about 32752 (65504 / 2) or more, whatever K is.',
    chips: 'all',
    chipNote: 'measured on M2 Pro and M5 (some reports say ~32759)',
    kind: 'silent-hardware-behaviour',
    symptom: 'The element becomes ±inf even though every input is finite.',
    fix: 'Keep every dot product below 32752: scale inputs or weights and undo the scale afterwards.',
    upstream: 'ANEForge docs/numeric-cliffs.md, issue #115, bench/numeric_cliffs.py',
    enforcement: 'simulator',
    limit: 32752,
    emulation: 'After accumulating a matmul output element, replace it by ±inf (its sign) when |y| >= 32752.',
  }),
  rule({
    referenceId: 'num.width-slice-saturation',
    title: 'Width-offset slices saturate at 4094',
    condition:
      '`slice_by_size` (or a crop/gather lowering) has a nonzero begin on the last axis and a sliced value exceeds 4094 in magnitude.',
    chips: ['M1', 'M2', 'M3'],
    chipNote: 'measured on M1 and M2; M3 unmeasured; exact on M4/M5',
    kind: 'silent-hardware-behaviour',
    symptom: 'Sliced values with |v| > 4094 (65504 / 16, a Q.4 crop DMA) come out as ±inf.',
    fix: 'Slice with a zero last-axis begin, transpose the sliced axis off the last position, or keep sliced values within ±4094.',
    upstream:
      'ANEForge docs/numeric-cliffs.md, aneforge/_compile.py `_warn_h13_slice_saturation`, docs/cross-chip.md, docs/op-catalog.md',
    conflict:
      "ANEForge's cross-chip doc and op catalog say A13 only; its numeric-cliffs doc and compiler say every pre-A16 chip including M2 Pro.",
    enforcement: 'simulator',
    limit: 4094,
    emulation:
      'On the listed chips, when slice_by_size has a nonzero begin on the last axis, replace every sliced value with |v| > 4094 by ±inf (its sign).',
  }),
  rule({
    referenceId: 'num.width-slice-concat',
    title: 'Concat of several width-offset slices',
    condition: '`concat` takes two or more inputs that are slices with a nonzero last-axis begin.',
    chips: ['M1', 'M2', 'M3'],
    chipNote: 'measured on M1 and M2; M3 unmeasured; exact on M4/M5',
    kind: 'silent-hardware-behaviour',
    symptom: 'The concat returns wrong elements at any magnitude (a single width-offset slice is exact).',
    fix: 'Slice on a non-last axis (transpose first).',
    upstream:
      'ANEForge aneforge/_compile.py `_warn_h13_slice_saturation`, docs/developer/capabilities-and-targets.md, aneforge/graph.py `gather`',
    enforcement: 'mil-check',
  }),
  rule({
    referenceId: 'num.integer-exactness',
    title: 'Integers above 2048 round',
    condition: 'A count, index or integer sum held in fp16 exceeds 2048.',
    chips: 'all',
    chipNote: 'measured on M2 Pro and M5',
    kind: 'silent-hardware-behaviour',
    symptom:
      'The integer rounds (2049 reads back as 2050); the simulator reproduces this through fp16 storage.',
    fix: 'Keep counts and indices at most 2048, compare with fp16 tolerance, or do integer logic on the host.',
    upstream: 'ANEForge docs/numeric-cliffs.md, docs/developer/bridges.md',
    enforcement: 'documented',
  }),
  rule({
    referenceId: 'num.accumulator-width',
    title: 'Accumulator width',
    condition: 'A long or cancellation-prone sum is computed with `reduce_sum`.',
    chips: 'all',
    kind: 'silent-hardware-behaviour',
    symptom:
      'matmul accumulates fp16-rounded products in a wide accumulator; reduce_sum may accumulate in fp16 and lose precision.',
    fix: 'Express long sums as `x @ ones[K, 1]`.',
    upstream:
      'ANEForge docs/developer/numerics.md, docs/developer/overview.md, aneforge/_rewrite.py `reduce_sum_to_matmul`',
    conflict:
      "ANEForge's overview says reductions are also wide; its numerics doc says reduce_sum is narrow.",
    enforcement: 'simulator',
    emulation:
      'matmul (and conv): round each product operand to fp16, accumulate in fp32, round once. reduce_sum: the conservative reading rounds to fp16 after every add; the corpus tolerances admit fp32 accumulation too.',
  }),
  rule({
    referenceId: 'num.reduce-route-threshold',
    title: 'Reduction route threshold',
    condition: 'A reduction, softmax or norm reduces an axis of 192 or more (A13/A14) or 384 or more (A15+).',
    chips: 'all',
    kind: 'silent-hardware-behaviour',
    severity: 'warning',
    symptom: 'A transpose route reorders partial sums: results differ across chips by at most 1 ULP.',
    fix: 'Compare across chips with ULP tolerances.',
    upstream: 'ANEForge aneforge/_targets.py `reduction_transpose_extent`, docs/op-catalog.md',
    enforcement: 'documented',
  }),
  rule({
    referenceId: 'num.reduce-square-fusion',
    title: 'Reduce-then-square rounding on M1',
    condition: 'A reduction is followed by a square on M1.',
    chips: ['M1'],
    chipNote: 'claimed',
    kind: 'silent-hardware-behaviour',
    severity: 'warning',
    symptom: 'Possibly one extra fp16 rounding.',
    fix: 'Test with tolerances.',
    upstream: 'ANEForge docs/op-catalog.md, aneforge/_targets.py',
    conflict:
      'The op catalog says the fusion exists from M2 only; the target table finds M1, M2 and M5 identical.',
    enforcement: 'documented',
  }),
  rule({
    referenceId: 'num.activation-lut',
    title: 'LUT-based activations',
    condition: 'A VJP assumes the exact activation function (e.g. exact GELU).',
    chips: 'all',
    chipNote: 'gelu error ~0.08 relative measured on M1; other chips unmeasured',
    kind: 'silent-hardware-behaviour',
    severity: 'warning',
    symptom: 'The forward the ANE computes differs from the exact function, so gradients do not match it.',
    fix: 'Measure LUT error per chip in the corpus, test gradients with per-op tolerances, or emit the tanh form with its own derivative.',
    upstream: 'ANEForge docs/op-catalog.md',
    enforcement: 'documented',
  }),
  rule({
    referenceId: 'num.eps-underflow',
    title: 'Tiny fp16 constants become zero',
    condition:
      'An fp16 constant is nonzero as written but rounds to 0 in fp16 (|v| < 2^-25, e.g. ε = 1e-8 or 1e-12).',
    chips: 'all',
    kind: 'silent-hardware-behaviour',
    severity: 'warning',
    symptom: 'The constant is 0 on the ANE: a division by it gives ±inf (and no NaN propagates).',
    fix: 'Use ε of at least 1e-7 (1e-5 for norms); for on-device Adam ε >= 6e-5 or clamp sqrt(v).',
    upstream:
      'coremltools iOS15/elementwise_unary.py; ml-ane-transformers distilbert.py; ANEForge aneforge/autograd.py `_adam_update`',
    enforcement: 'mil-check',
  }),
  rule({
    referenceId: 'num.cross-chip-drift',
    title: 'Cross-chip drift',
    condition: 'Tests compare results from different chip families bit for bit.',
    chips: 'all',
    chipNote: 'boundary between A15 (M1 to M3) and A16 (M4/M5)',
    kind: 'advice',
    symptom: 'fp16 results differ by up to 1 ULP per op; trained accuracy drifts slightly.',
    fix: 'Keep per-chip golden files or ULP tolerances.',
    upstream: 'ANEForge docs/training.md, docs/cross-chip.md',
    enforcement: 'documented',
  }),
  rule({
    referenceId: 'num.mask-value',
    title: 'Masks are finite',
    condition: 'A constant tensor (mask) holds -inf or +inf.',
    chips: 'all',
    kind: 'silent-hardware-behaviour',
    symptom: 'inf - inf gives NaN, which the ANE does not propagate: the softmax is silently wrong.',
    fix: 'Use an additive mask of -1e4 or -65504 (fp16 lowest) instead of -inf.',
    upstream:
      'maderix/ANE training/stories_mil.h; Orion core/mil_builder.m; ANEForge aneforge/_compile.py `_run_sdpa`',
    enforcement: 'mil-check',
  }),
  rule({
    referenceId: 'num.cancellation',
    title: 'Cancellation',
    condition: 'Nearly equal fp16 values are subtracted (e.g. 1 - erf(3)).',
    chips: 'all',
    kind: 'silent-hardware-behaviour',
    severity: 'warning',
    symptom:
      'The difference is lost in the fp16-rounded operands; the simulator reproduces this through fp16 storage.',
    fix: 'Reformulate (direct erfc, centred polynomials) or use compensated paired-fp16 arithmetic.',
    upstream: 'ANEForge docs/developer/numerics.md, aneforge/_rewrite.py `paired_subtract`',
    enforcement: 'documented',
  }),

  // ---- io: I/O surfaces and binding ----
  rule({
    referenceId: 'io.packed-read',
    title: 'Inputs are read densely from byte 0',
    condition: 'Input data is written into a surface with a stride, row padding or an offset.',
    chips: 'all',
    chipNote: 'in-memory route',
    kind: 'silent-hardware-behaviour',
    symptom:
      'The ANE reads dense row-major data of the declared shape from byte 0 whatever the allocation, so padded data is misread (~260x too small).',
    fix: 'Write packed data at the start of each surface; pad only at the end.',
    upstream: 'Orion docs/ane_constraints.md #14; maderix/ANE training/stories_io.h',
    enforcement: 'simulator',
    emulation:
      'Read each input as dense row-major data of the declared shape from byte 0 of its buffer and write outputs likewise, ignoring any extra allocated bytes; never apply a stride.',
  }),
  rule({
    referenceId: 'io.uniform-alloc',
    title: 'Uniform surface allocation',
    condition: 'Input surfaces (or output surfaces) of one program have different allocation sizes.',
    chips: 'all',
    chipNote: 'in-memory route; seen on M4 Max (Orion) and M1',
    kind: 'runtime-failure',
    symptom: 'Evaluation fails (status=0x1d Program Inference error) or outputs read as zeros.',
    fix: 'Allocate every input surface of a program at one size, and every output surface likewise, with packed data at the start.',
    upstream:
      'Orion docs/ane_constraints.md #2, #12; maderix/ANE issue #47, README; ANEForge aneforge/autograd.py `_build_resident`',
    conflict:
      'A third-party M1 report says inputs must be strictly ascending and outputs strictly descending in size; e5rt ports of different sizes work.',
    enforcement: 'documented',
  }),
  rule({
    referenceId: 'io.binding-order',
    title: 'I/O binding order',
    condition: 'Function parameters, or returned names, are not in alphabetical order of their names.',
    chips: ['M4'],
    chipNote: 'alphabetical binding reported on M4 Max (Orion)',
    kind: 'silent-hardware-behaviour',
    severity: 'warning',
    symptom:
      'Surfaces may bind to inputs or outputs in alphabetical order rather than declaration order, silently swapping data.',
    fix: 'Name ports so that alphabetical, declaration and return order agree (e.g. `a00_x`, `a01_w`).',
    upstream:
      'Orion docs/ane_constraints.md #3, #13, kernels/training/stories_train.m; maderix/ANE training/training_dynamic/io.h, bridge/ane_bridge.m',
    conflict:
      'Orion says alphabetical (yet its trainer reads outputs in return order); maderix/ANE binds input i to parameter i and output j to returned name j.',
    enforcement: 'mil-check',
  }),
  rule({
    referenceId: 'io.min-surface',
    title: 'Minimum surface size',
    condition: 'An I/O surface is allocated below about 49,152 bytes.',
    chips: 'all',
    chipNote: 'in-memory route; seen on M4 Max (Orion)',
    kind: 'runtime-failure',
    symptom: 'Evaluation fails (status=0x1d) although compilation succeeds.',
    fix: 'Allocate every surface at least 49,152 bytes with packed data at the start, until probed.',
    upstream:
      'Orion docs/ane_constraints.md #4, pass_ane_validate.c, docs/ane_api_reference.md; maderix/ANE training/tiny_train.m; ANEForge docs/mil-primer.md',
    conflict:
      "maderix/ANE uses 4,096-byte surfaces and ANEForge tiny tensors successfully; Orion's byte counts leave unclear whether the limit is bytes or elements.",
    enforcement: 'documented',
    limit: 49152,
  }),
  rule({
    referenceId: 'io.alignment',
    title: 'Innermost I/O axis of 64 bytes',
    condition: 'The last axis of a function input or output is not a multiple of 64 bytes.',
    chips: 'all',
    chipNote: 'untested territory; a third-party M5 report asks for 128 bytes',
    kind: 'advice',
    symptom:
      'Unknown: every working peer shape has a 64-byte-multiple innermost axis (rows are padded to 64 bytes internally).',
    fix: 'Keep the last I/O axis a multiple of 32 fp16 elements (64 bytes) until probed.',
    upstream:
      'maderix/ANE training/stories_io.h, PR #35; eiln docs/tinygrad-corrections.md; tinygrad extra/accel/ane/README.md',
    enforcement: 'mil-check',
    limit: 64,
  }),
  rule({
    referenceId: 'io.layout',
    title: 'Channels-first layout',
    condition: 'Data is not laid out as `[B, C, 1, S]` with the sequence on the last axis.',
    chips: 'all',
    kind: 'performance',
    symptom: 'A small last axis is padded to 64 bytes internally, wasting up to 32x memory and bandwidth.',
    fix: 'Put the sequence on the last axis and features on channels; projections as 1x1 conv or matmul over `[1, C, 1, S]`.',
    upstream: 'ml-ane-transformers; Orion README',
    enforcement: 'ir',
  }),
  rule({
    referenceId: 'io.surface-creation',
    title: 'IOSurface properties',
    condition:
      'Surfaces are created with other properties than width = bytes, height = 1, bytesPerElement = 1, bytesPerRow = bytes, allocSize = bytes, pixelFormat = 0.',
    chips: 'all',
    chipNote: 'in-memory route',
    kind: 'runtime-failure',
    symptom: 'Evaluation fails or returns garbage.',
    fix: 'Create surfaces with exactly these properties; lock with 0 to write and read-only to read.',
    upstream: 'maderix/ANE training/stories_io.h; Orion docs/ane_api_reference.md',
    enforcement: 'documented',
  }),
  rule({
    referenceId: 'io.in-memory-api',
    title: 'In-memory API inputs',
    condition:
      'A BLOBFILE path is not `@model_path/` followed by a relative path (no empty, `.` or `..` component) with a weights-dictionary entry of exactly that key (or the dictionary is nil, or the MIL text is not UTF-8 NSData). Nothing requires a `weights/` folder: maderix uses `@model_path/weights/<file>`, Orion `@model_path/layer<N>/<file>`, `@model_path/masks/<file>` and `@model_path/embed.bin`, and both run on hardware.',
    chips: 'all',
    chipNote: 'in-memory route',
    kind: 'runtime-failure',
    symptom: 'The framework crashes or compilation fails.',
    fix: 'Give every BLOBFILE path a weights entry with exactly that key (e.g. `@model_path/weights/w.bin` or `@model_path/layer0/wq.bin`; the bridge stages each blob at its relative path in the model directory, creating subfolders); pass an empty dictionary for weight-free programs.',
    upstream:
      'Orion docs/ane_constraints.md #9, #11, docs/ane_api_reference.md, core/ane_runtime.m; maderix/ANE training/training_dynamic/io.h, bridge/ane_bridge.m',
    enforcement: 'mil-check',
  }),

  // ---- blob: weight blobs ----
  rule({
    referenceId: 'blob.offset',
    title: 'BLOBFILE offset names the record',
    condition:
      'The BLOBFILE `offset` does not name a valid 64-byte record (0xDEADBEEF, dtype code, size, payload offset = record + 64) holding the declared dtype and element count.',
    chips: 'all',
    chipNote: 'M3 to M5 do not validate the size and offset fields',
    kind: 'silent-hardware-behaviour',
    symptom:
      'The ANE bakes garbage weights without an error. Records other tools write (payload-offset field 0, dtype code 1 for int8 data, a size field that does not follow the shape, a header count of 1 for 3 tensors: maderix/ANE `ane_int8_bench.m`) compile on M3 to M5 and report throughput, but what the hardware reads from them is unverified; `ane-ir/mil` and the simulator accept a record whose payload-offset field is not record + 64 with a warning naming each such field, and read its payload at record + 64 with the dtype and shape the MIL declares.',
    fix: 'Write blobs with `writeBlobFile` and use the record offsets it returns (64 for the first tensor).',
    upstream:
      'Orion docs/ane_constraints.md #8; ANEForge aneforge/_blob.py; coremltools MILBlob StorageFormat.hpp; maderix/ANE training/stories_io.h',
    enforcement: 'mil-check',
  }),
  rule({
    referenceId: 'blob.multi-tensor-file',
    title: 'Several tensors in one blob file on M1',
    condition: 'A weight file holds more than one tensor, or a BLOBFILE offset other than 64 is used.',
    chips: ['M1'],
    chipNote: 'claimed for M1 only',
    kind: 'compile-reject',
    severity: 'warning',
    symptom: 'Compilation reportedly fails on M1.',
    fix: 'Write one file per tensor on the in-memory route (works everywhere reported); use multi-tensor files after an M1 probe.',
    upstream:
      'maderix/ANE benchmarks/ANE_BENCHMARK_REPORT.md, PR #6; ANEForge aneforge/_blob.py, aneforge/_compile.py',
    conflict:
      "maderix/ANE's report blames multi-tensor blobs; its PR #6 blames cast and syntax; ANEForge runs multi-tensor files on M1.",
    enforcement: 'mil-check',
  }),
  rule({
    referenceId: 'blob.e5rt-blobfile',
    title: 'BLOBFILE on the e5rt route',
    condition: 'Sibling BLOBFILE weights are used on the e5rt route.',
    chips: 'all',
    chipNote: 'e5rt route only',
    kind: 'compile-reject',
    severity: 'warning',
    symptom: 'Claimed compile failure.',
    fix: 'Not relevant to the in-memory route; small constants can be inline hex literals on any route.',
    upstream: 'ANEForge docs/mil-primer.md, aneforge/_compile.py `_emit_program_dir`',
    conflict:
      "ANEForge's primer says BLOBFILE does not work via e5rt; its compiler writes weights.bin and compiles through e5rt.",
    enforcement: 'documented',
  }),
  rule({
    referenceId: 'blob.weights-baked',
    title: 'Const weights are baked at compile time',
    condition:
      'Weights are changed by rewriting the blob file (or weights dictionary) and reloading without recompiling.',
    chips: 'all',
    chipNote: 'measured on M4 and M5',
    kind: 'silent-hardware-behaviour',
    symptom: 'Outputs are unchanged: the compiled program keeps the old weights.',
    fix: 'Pass trainable weights as runtime inputs; bake only frozen tensors; test any reload path on the device.',
    upstream:
      'maderix/ANE training/test_weight_reload.m, training/m5result.md; Orion docs/ane_constraints.md #7, core/ane_runtime.m',
    conflict: "Orion's trainer rewrites weights/*.bin and reloads, a path its tests do not cover.",
    enforcement: 'simulator',
    emulation:
      'Copy the weight bytes when a program is compiled; later changes to the weights map or its arrays do not affect compiled kernels.',
  }),

  // ---- rt: runtime and compile lifecycle ----
  rule({
    referenceId: 'rt.weights-as-inputs',
    title: 'Weights as runtime inputs',
    condition:
      'Trainable weights are baked as constants, or packed weights do not share the channel count (spatial packing) or S (channel packing) of the activations.',
    chips: 'all',
    kind: 'advice',
    symptom: 'Every weight update needs a recompile; mismatched packing needs extra kernels.',
    fix: 'Compile each kernel once and stage weights into its input surfaces after every optimizer step.',
    upstream:
      'maderix/ANE training/training_dynamic/io.h, mil_dynamic.h; ANEForge docs/training.md; ANEgpt README',
    enforcement: 'ir',
  }),
  rule({
    referenceId: 'rt.compile-budget',
    title: 'Compile budget per process',
    condition: 'A process compiles more than about 119 programs on the in-memory route.',
    chips: 'all',
    kind: 'runtime-failure',
    symptom: 'Further compiles fail silently or the process becomes unstable (a leak in _ANEInMemoryModel).',
    fix: 'Compile a fixed kernel set once and stay at or below 100 compiles; checkpoint and exec() restart as a fallback.',
    upstream:
      'Orion docs/ane_constraints.md #5; maderix/ANE README, training/tiny_train.m, issue #54; ANEForge docs/e5rt-dispatch-reference.md',
    enforcement: 'simulator',
    limit: 119,
    emulation:
      'Count successful compiles per process (cache hits excluded); refuse every compile after the 119th with an error that names this rule.',
  }),
  rule({
    referenceId: 'rt.compile-failure-pacing',
    title: 'Pace compiles after a failure',
    condition: 'Compiles are retried in a burst after a failure.',
    chips: 'all',
    chipNote: 'ANEForge hosts',
    kind: 'runtime-failure',
    symptom: 'Later compiles hang or destabilise.',
    fix: 'Wait about 15 s before the next compile after a failure and cap retries.',
    upstream: 'ANEForge aneforge/_circuit.py, docs/training.md',
    enforcement: 'documented',
  }),
  rule({
    referenceId: 'rt.same-process',
    title: 'Compile and evaluate in one process',
    condition:
      'A compiled bundle is loaded by another process, or the process forks after the frameworks initialise.',
    chips: 'all',
    chipNote: 'e5rt route',
    kind: 'runtime-failure',
    symptom: 'Loading fails ("Must re-compile the E5 bundle") or the child crashes (SIGSEGV).',
    fix: 'Compile and evaluate in the same process; use posix_spawn, not fork.',
    upstream: 'ANEForge docs/e5rt-dispatch-reference.md §5, tests/conftest.py',
    enforcement: 'documented',
  }),
  rule({
    referenceId: 'rt.unload',
    title: 'Unload and check every call',
    condition:
      'Programs are not unloaded, surfaces or temp directories not released, or BOOL returns and NSError not checked.',
    chips: 'all',
    chipNote: 'in-memory route',
    kind: 'runtime-failure',
    symptom: 'Resources leak and failures go unexplained.',
    fix: 'Release deterministically, map every NSError (status=0x..) to a typed error, retry a failed load once after ~100 ms.',
    upstream: 'Orion docs/ane_api_reference.md, core/ane_runtime.m; maderix/ANE bridge/ane_bridge.m',
    enforcement: 'documented',
  }),
  rule({
    referenceId: 'rt.compile-after-load',
    title: 'Compile after loading the checkpoint',
    condition: 'Programs are compiled before checkpoint weights are in place.',
    chips: 'all',
    kind: 'advice',
    symptom: 'Stale weights are baked (divergence after resume) and the compile count doubles.',
    fix: 'Load the checkpoint first, then build kernels.',
    upstream: 'Orion RESULTS.md (Bug 1), kernels/training/stories_train.h',
    enforcement: 'documented',
  }),
  rule({
    referenceId: 'rt.silent-fallback',
    title: 'Silent CPU fallback',
    condition:
      'The toolchain is allowed to fall back (e5rt device masks, unknown target strings, Core ML placement).',
    chips: 'all',
    kind: 'performance',
    symptom: 'The program runs on the CPU (slow) or passes a cross-chip check it would fail.',
    fix: 'Request the ANE only, reject unknown targets, check caps statically per family, verify placement.',
    upstream: 'ANEForge docs/e5rt-dispatch-reference.md, docs/cross-chip.md, docs/capabilities.md',
    enforcement: 'documented',
  }),
  rule({
    referenceId: 'rt.mil-floor',
    title: 'MIL needs H13 or later',
    condition: 'A chip older than M1/A14 (H13) is targeted.',
    chips: 'all',
    chipNote: 'affects only pre-M1 engines, which this SDK does not target',
    kind: 'runtime-failure',
    symptom: 'MIL is refused outright.',
    fix: 'Refuse targets older than M1.',
    upstream: 'ANEForge aneforge/_targets.py, docs/cross-chip.md',
    enforcement: 'documented',
  }),
  rule({
    referenceId: 'rt.os-versions',
    title: 'macOS versions',
    condition:
      'The host runs macOS older than 15, or program construction relies on Core ML (broken on macOS 26).',
    chips: 'all',
    kind: 'runtime-failure',
    symptom: 'Load or compile failures; ANE scheduling speed also shifts between OS builds.',
    fix: 'Require macOS 15+, never build programs through Core ML, record the OS build with benchmarks.',
    upstream: 'maderix/ANE README, PR #21, PR #27; Orion README',
    enforcement: 'documented',
  }),
  rule({
    referenceId: 'rt.chip-detection',
    title: 'Chip detection',
    condition: 'The chip family is derived from the Mac model identifier.',
    chips: 'all',
    kind: 'advice',
    symptom: 'Wrong limits are applied (model identifiers do not map to chips).',
    fix: 'Detect from machdep.cpu.brand_string (M(n) = H(n+12)), allow an override, treat unknown chips as the lowest family.',
    upstream: 'ANEForge aneforge/_targets.py `detect_family`, docs/cross-chip.md',
    enforcement: 'documented',
  }),
  rule({
    referenceId: 'rt.qos',
    title: 'QoS argument',
    condition: "A QoS other than the peers' 21 is passed.",
    chips: 'all',
    chipNote: 'measured on M5',
    kind: 'advice',
    symptom: 'No measurable effect (QoS 0 once showed a slow first load).',
    fix: 'Pass 21.',
    upstream:
      'maderix/ANE training/test_qos_sweep.m, training/m5result.md; Orion docs/ane_api_reference.md; ANEForge docs/dispatch.md',
    enforcement: 'documented',
  }),
  rule({
    referenceId: 'rt.dispatch-floor',
    title: 'Dispatch cost floor',
    condition: 'Programs are too small to amortise the fixed dispatch round-trip (~0.1 to 0.2 ms).',
    chips: 'all',
    kind: 'performance',
    symptom: 'Tiny programs are dominated by dispatch overhead; threads do not help.',
    fix: 'Fuse many ops per program (16 to 64+) and batch more work per call.',
    upstream:
      'ANEForge docs/developer/optimizer-and-cost.md, docs/capabilities.md; Orion RESULTS.md; maderix/ANE training/m5result.md',
    enforcement: 'documented',
  }),
  rule({
    referenceId: 'rt.compile-scaling',
    title: 'Compile time grows with program size',
    condition: 'Whole deep networks or large-batch im2col graphs are compiled as one program.',
    chips: 'all',
    chipNote: 'M1 worst',
    kind: 'performance',
    symptom: 'Compile time grows superlinearly (minutes, or hangs on M1).',
    fix: 'Reuse per-layer-shape kernels across layers; keep im2col minibatches at most 128.',
    upstream: 'ANEForge docs/training.md, docs/developer/autograd.md, examples/train_charlm_deep.py',
    enforcement: 'documented',
  }),
  rule({
    referenceId: 'rt.resident-aliasing',
    title: 'Resident state by aliasing',
    condition: 'An aliased output/input buffer is written from the host between steps.',
    chips: 'all',
    chipNote: 'e5rt route',
    kind: 'silent-hardware-behaviour',
    severity: 'warning',
    symptom: 'State is stale or corrupted.',
    fix: 'On the in-memory route pass the same surface as input and output across steps only after an ordering probe.',
    upstream: 'ANEForge docs/e5rt-dispatch-reference.md §2.5.1, aneforge/autograd.py `_build_resident`',
    enforcement: 'documented',
  }),

  // ---- train: training numerics ----
  rule({
    referenceId: 'train.loss-scaling',
    title: 'Loss scaling',
    condition: 'fp16 backward runs without a loss scale, or a step with non-finite gradients is applied.',
    chips: 'all',
    kind: 'advice',
    symptom: 'Small gradients flush to zero (loss plateaus) or weights become inf/NaN.',
    fix: 'Use a dynamic loss scale folded into the seed as an additive constant, check read-back gradients and skip non-finite steps (Adam does not divide lr by the scale).',
    upstream:
      'maderix/ANE commit 926f977, training/training_dynamic/train.m; ANEForge docs/training.md, aneforge/autograd.py',
    enforcement: 'documented',
  }),
  rule({
    referenceId: 'train.conv-wgrad-loss-scale',
    title: 'Conv weight gradient through width slices',
    condition:
      "A trainable conv's weight gradient uses width-offset im2col slices and loss_scale × |backward activation| exceeds 4094.",
    chips: ['M1', 'M2'],
    chipNote: 'measured on M1; M2 by num.width-slice-saturation',
    kind: 'silent-hardware-behaviour',
    symptom: 'Weight gradients silently become ±inf.',
    fix: 'Put the patch index on a non-last axis; warn when loss_scale >= 512 with kW > 1.',
    upstream:
      'ANEForge docs/cross-chip.md, docs/developer/autograd.md, aneforge/autograd.py `_guard_a13_conv_loss_scale`',
    enforcement: 'documented',
  }),
  rule({
    referenceId: 'train.fp16-optimizer-state',
    title: 'fp16 optimizer state',
    condition: 'Adam runs on the device in fp16 with loss-scaled gradients.',
    chips: 'all',
    kind: 'silent-hardware-behaviour',
    severity: 'warning',
    symptom: 'v overflows once |g| > ~256 and underflows below ~2.4e-4; ε = 1e-8 is 0.',
    fix: 'Keep the optimizer on the host in fp32; on device unscale before squaring, clamp, and use ε >= 6e-5.',
    upstream: 'ANEForge docs/training.md, aneforge/autograd.py `_adam_update`',
    enforcement: 'documented',
  }),
  rule({
    referenceId: 'train.ce-backward',
    title: 'Analytic cross-entropy backward',
    condition: 'The cross-entropy backward goes through `log`.',
    chips: 'all',
    kind: 'silent-hardware-behaviour',
    severity: 'warning',
    symptom: 'Gradients become inf/NaN (fp16 overflow).',
    fix: 'Seed the backward at the logits with (softmax - onehot)/N × loss scale; compute the loss value on the host in fp32.',
    upstream:
      'ANEForge docs/training.md, aneforge/autograd.py `CEHandle`; Orion kernels/training/stories_cpu_ops.m',
    enforcement: 'documented',
  }),
  rule({
    referenceId: 'train.activation-clamps',
    title: 'Clamp only at conversion boundaries',
    condition:
      'Activations are clipped inside the model, or host values are not clamped and sanitised before fp16 conversion.',
    chips: 'all',
    kind: 'advice',
    symptom: 'Gradients explode or NaN cascades.',
    fix: 'No in-model clipping; clamp to ±65504 and map NaN to 0 / inf to the clamp when converting to fp16.',
    upstream: 'maderix/ANE training/training_dynamic/train.m (commit c3c5094); Orion RESULTS.md (Bugs 2, 3)',
    enforcement: 'documented',
  }),
  rule({
    referenceId: 'train.embedding',
    title: 'Embeddings without gather',
    condition: 'An embedding lookup is placed on the ANE as a gather.',
    chips: 'all',
    kind: 'advice',
    symptom: 'Rejected, and there is no gather VJP.',
    fix: 'Use a one-hot matmul (one-hot built on the host) for small vocabularies, or keep the embedding and its dW on the host.',
    upstream:
      'ANEForge docs/training.md, aneforge/_capabilities.py; ANEgpt README; Orion kernels/training/stories_train.m',
    enforcement: 'documented',
  }),

  // ---- perf: performance cliffs ----
  rule({
    referenceId: 'perf.sram',
    title: 'On-chip SRAM working set',
    condition: 'A single tensor of the program exceeds 32 MiB.',
    chips: 'all',
    chipNote: 'SRAM ~32 MB measured on M4',
    kind: 'performance',
    symptom: 'Working sets above ~32 MB lose ~30% throughput (catastrophic at 128 MB).',
    fix: 'Tile kernels so weights plus activations stay within ~24 to 32 MB.',
    upstream: 'Orion RESULTS.md, compiler/pass_sram.c; maderix/ANE PR #40; ANEForge docs/op-catalog.md',
    enforcement: 'mil-check',
    limit: 32 * 1024 * 1024,
  }),
  rule({
    referenceId: 'perf.conv-vs-matmul',
    title: 'conv versus matmul',
    condition: 'Projections with baked weights use matmul rather than a 1x1 conv.',
    chips: 'all',
    chipNote: 'claimed for M4',
    kind: 'performance',
    symptom: 'Reportedly ~3x lower throughput (unreproduced).',
    fix: 'Baked weights as 1x1 conv, runtime weights as matmul; benchmark both.',
    upstream:
      'Orion docs/ane_api_reference.md, core/mil_builder.h; maderix/ANE benchmarks/ANE_BENCHMARK_REPORT.md, PR #22',
    conflict: 'The ~3x claim is not reproduced by any repository.',
    enforcement: 'documented',
  }),
  rule({
    referenceId: 'perf.rmsnorm-reduction',
    title: 'Channel reductions over many rows',
    condition:
      'A reduction over axis 1 of a rank-4 tensor with more than 256 rows on axis 0 (`[M, D]` reshaped to `[M, D, 1, 1]`).',
    chips: 'all',
    chipNote: 'chip not stated by the source',
    kind: 'performance',
    symptom: 'The reduction leaves the fast tile: 16 to 48x slower.',
    fix: 'Reduce over the last axis (reduce_l2_norm based RMSNorm), or keep rows at most 256; benchmark channel reductions on `[1, C, 1, S]`.',
    upstream: 'ANEForge aneforge/_compile.py `_e_rms_norm`',
    enforcement: 'mil-check',
    limit: 256,
  }),
  rule({
    referenceId: 'perf.attention-tiles',
    title: 'Attention query tiles',
    condition: 'Large `[H, Sq, Skv]` score matrices are materialised in one piece.',
    chips: 'all',
    chipNote: 'chip not stated by the source',
    kind: 'performance',
    symptom: 'About 2.4x slower than tiling.',
    fix: 'Tile queries into ~512-row blocks; keep small-T attention single-shot.',
    upstream: 'ANEForge docs/developer/op-quirks.md, aneforge/graph.py `mha`/`sdpa`',
    enforcement: 'ir',
  }),
  rule({
    referenceId: 'perf.weight-compression',
    title: 'Weight compression per family',
    condition: 'Compressed weights are used where the family does not stream them natively.',
    chips: 'all',
    kind: 'performance',
    symptom: 'No speedup, only accuracy loss (weights are folded to dense fp16).',
    fix: 'Compress only frozen weights and choose the format per family (int8 from A14, blockwise from A15; W8A8 gave 1.88x on M4).',
    upstream:
      'ANEForge docs/cross-chip.md, aneforge/_targets.py `native_streams`, docs/op-catalog.md; maderix/ANE README, PR #40',
    conflict: "ANEForge's op catalog says affine int8 and sparse stream only from A15.",
    enforcement: 'documented',
  }),

  // ---- ir: rules only the graph IR can see (IR-only; not rows of reference/ane-quirks.md) ----
  irOnlyRule({
    referenceId: 'ir.single-io',
    title: 'One input and one output per kernel',
    condition:
      "A kernel's inputs (activations and trainable weights) cannot be packed into one input tensor, or its outputs into one output, while the single-I/O default is in force: packing needs a shared channel count (spatial axis) or a shared sequence length (channel axis).",
    chips: 'all',
    kind: 'runtime-failure',
    symptom:
      'Multi-input requests are contested on the in-memory route: evaluation may fail with status 0x1d or read zeros.',
    fix: 'Split the kernel where the channel counts change (the partitioner does), or opt in to several inputs and outputs with `io: "separate"` after a conformance probe on the target chip.',
    basis:
      'reference/maderix-ane.md §4.5 (README "multi-input requests cause 0x1d"; every trainer uses one input and one output) and ane-quirks `io.uniform-alloc`, `rt.weights-as-inputs`',
  }),
  irOnlyRule({
    referenceId: 'ir.fp16-sum-of-squares',
    title: 'Sums of squares that can overflow fp16',
    condition:
      'A kernel holds a sum of squares (the RMSNorm or LayerNorm variance) whose bound N·maxAbs² exceeds 65504, or whose input has no declared bound.',
    chips: 'all',
    kind: 'silent-hardware-behaviour',
    limit: 65504,
    symptom:
      'The sum saturates to +inf in fp16 (D = 768 reaches 65504 at an RMS of 9.2) and the normalized output collapses to 0 or NaN-like garbage, silently.',
    fix: 'Run the norm on the host (the partitioner does this by default), or declare `maxAbs` on the input so the bound proves the sum fits.',
    basis:
      'reference/maderix-ane.md §2.4 example C caution (sum of squares reaches ~7.7e4 for D = 768 at magnitude 10) and ane-quirks `num.fp16-range`',
  }),
  irOnlyRule({
    referenceId: 'ir.fp16-range-bound',
    title: 'Declared bounds that overflow fp16',
    condition: 'The magnitude bound of an op result, derived from declared input bounds, exceeds 65504.',
    chips: 'all',
    kind: 'silent-hardware-behaviour',
    severity: 'warning',
    limit: 65504,
    symptom: 'Values past 65504 become ±inf in fp16 between ops, silently.',
    fix: 'Scale the inputs or weights down (fold 1/N into a weight), normalize between products, or move the op to the host.',
    basis: 'ane-quirks `num.fp16-range`, `num.matmul-output-inf`, applied to bounds the caller declares',
  }),
  irOnlyRule({
    referenceId: 'ir.host-only-op',
    title: 'Ops with no ANE lowering',
    condition: 'A kernel holds an op that has no ANE lowering (gather, used by embeddings).',
    chips: 'all',
    kind: 'compile-reject',
    symptom: 'There is no MIL form that runs on the ANE (gather is not native, and has no gradient there).',
    fix: 'Leave the op to the host (the partitioner places gather and embedding there), or use a one-hot matmul with the one-hot built on the host.',
    basis: 'ane-quirks `op.gather`, `train.embedding`',
  }),
  irOnlyRule({
    referenceId: 'ir.weight-grad-host',
    title: 'Weight gradients on the host',
    condition:
      'A weight gradient (a `weight_grad` call: dW = dY·Xᵀ, or a gain or bias gradient, summed over every position of the batch) runs in an ANE kernel.',
    chips: 'all',
    kind: 'advice',
    symptom:
      'dW is a GEMM over every position of the batch: its fp16 accumulation loses small contributions and can overflow, and the optimizer needs it in fp32 (on the ANE it would be rounded to fp16 and converted back).',
    fix: "Leave weight gradients to the host (the partitioner places `weight_grad` calls there by default, where they overlap the next kernels), or place one on the ANE with `placement: { '<call>': 'ane' }` when its accumulation is known to fit.",
    basis:
      'shared/DESIGN.md "One training step" (dW GEMMs on host threads, fp32 master weights) and ane-quirks `num.fp16-range`, `train.fp16-optimizer-state`',
  }),
];

const RULES_BY_ID: ReadonlyMap<string, AneRule> = new Map(ANE_RULES.map((r) => [r.id, r]));

/** The rule with this id (kebab-case, or the reference's dotted id). Throws for an unknown id. */
export function getRule(id: string): AneRule {
  const found = RULES_BY_ID.get(id) ?? RULES_BY_ID.get(id.replace('.', '-'));
  if (found === undefined) throw new RangeError(`unknown ANE rule '${id}'`);
  return found;
}

export function chipAtLeast(chip: ChipFamily, floor: ChipFamily): boolean {
  return CHIP_FAMILIES.indexOf(chip) >= CHIP_FAMILIES.indexOf(floor);
}

export function ruleAppliesTo(rule: AneRule, chip: ChipFamily): boolean {
  return rule.chips === 'all' || rule.chips.includes(chip);
}

/** Errors refuse a program; warnings are reported and let it through. */
export function ruleSeverity(rule: AneRule): RuleSeverity {
  if (rule.severity !== undefined) return rule.severity;
  return rule.kind === 'performance' || rule.kind === 'advice' ? 'warning' : 'error';
}

/** The rule's threshold on `chip`, when it has one. */
export function ruleLimit(rule: AneRule, chip: ChipFamily): number | undefined {
  return typeof rule.limit === 'object' ? rule.limit[chip] : rule.limit;
}

/** Rules the simulator must reproduce; the simulator's registry is tested to equal this list. */
export const SIMULATED_RULE_IDS: readonly string[] = ANE_RULES.filter(
  (r) => r.enforcement === 'simulator',
).map((r) => r.id);

/** Rules `rule-checks.ts` checks statically on MIL programs. */
export const MIL_CHECKED_RULE_IDS: readonly string[] = ANE_RULES.filter(
  (r) => r.enforcement === 'mil-check',
).map((r) => r.id);
