/**
 * A step-time estimate for a plan on a chip family, NOT a measurement: the milliseconds one step of
 * a `PlanSummary` would take on an Apple-silicon Mac, from the plan's own counts (kernel
 * evaluations, device FLOPs, bytes staged into device buffers, host-op FLOPs by kind, parameters)
 * and a handful of per-chip constants. Every constant is derived from a figure published for
 * maderix/ANE (`shared/reference/maderix-ane.md`, quoted next to it) or is a stated assumption.
 * No machine here has an ANE: a first run on a Mac confirms or refutes the estimate.
 *
 * The model, per step of B sequences (all figures from the summary, already × B):
 *
 *   aneCompute       = device FLOPs / aneTflops            (matmul work at an effective rate; a kernel
 *                      with a buffer above the ~32 MB SRAM at 4.0/5.7 of it)
 *   dispatch         = kernel evaluations × dispatchMs    (fixed cost per evaluation: XPC + IOKit)
 *   ioStaging        = activation bytes in and out of device buffers / stagingGBps
 *                      (fp32↔fp16 conversion and copy; weights are staged once per optimizer step,
 *                      so they are counted in `optimizer`, not here)
 *   hostCompute      = host ops on the critical path (norms, the loss, lookups, a host classifier):
 *                      GEMM kinds at hostGemmGflops, the rest at hostElementwiseGflops
 *   weightGradients  = the dW GEMMs (host-op kind `weight_grad`) at hostGemmGflops
 *   optimizer        = (AdamW + global-norm clip: 32 bytes per parameter, and restaging the fp16
 *                      weights: 6 bytes per staged element) / hostMemoryGBps, divided by the
 *                      micro-batches per optimizer step (`accumulate`)
 *
 *   total = max(aneCompute + dispatch + ioStaging + hostCompute, weightGradients) + optimizer
 *
 * The overlap rule is maderix/ANE's (§6.3): the dW GEMMs run on a host queue while later kernels
 * run, everything else runs in order. It is optimistic by the dW of the layer the backward pass
 * reaches last (nothing is left to overlap it with).
 */
import { CHIP_FAMILIES, type ChipFamily } from 'ane-ir/mil';
import type { PlanSummary } from './plan-summary';

/** How a chip family's constants were obtained. */
export type StepEstimateBasis =
  /** Derived from that chip's published step breakdown (M4 only). */
  | 'derived'
  /** M4's derivation rescaled by that family's published ANE figures, with one host factor fitted to a published step time. */
  | 'calibrated'
  /** No published figure for this chip: a nearer family's constants are used. */
  | 'extrapolated';

export interface StepTimeConstants {
  /** The chip family this row is for. */
  family: ChipFamily;
  basis: StepEstimateBasis;
  /** The family whose figures the values come from (itself unless extrapolated). */
  valuesOf: ChipFamily;
  /** Fixed cost of one kernel evaluation (ms). */
  dispatchMs: number;
  /** Effective fp16 matmul rate of the ANE inside real training kernels (TFLOP/s). */
  aneTflops: number;
  /** Bytes of fp16 device buffers converted and copied to or from the host per second (GB/s, 1e9). */
  stagingGBps: number;
  /** Host fp32 GEMM rate (GFLOP/s). */
  hostGemmGflops: number;
  /** Host rate for elementwise and reduction ops (norms, softmax, loss) by the IR's FLOP count (GFLOP/s). */
  hostElementwiseGflops: number;
  /** Host streaming bandwidth for the optimizer and bulk weight restaging (GB/s). An assumption on every chip. */
  hostMemoryGBps: number;
  /** Where each constant comes from: published figures, the arithmetic, or "assumption". */
  sources: Record<
    | 'dispatchMs'
    | 'aneTflops'
    | 'stagingGBps'
    | 'hostGemmGflops'
    | 'hostElementwiseGflops'
    | 'hostMemoryGBps',
    string
  >;
  /** The published whole-step figure the family is checked or calibrated against, if any. */
  calibration: string;
}

export interface StepTimeEstimate {
  /** The chip asked for (a family name, or anything else: then the nearest family is used). */
  chip: string;
  /** The family whose constants were used. */
  constantsFrom: ChipFamily;
  basis: StepEstimateBasis;
  /** Always false: this is arithmetic on published figures, never a measurement. */
  measured: false;
  batch: number;
  /** Micro-batches per optimizer step: the optimizer and weight restaging are spread over them. */
  accumulate: number;
  evaluations: number;
  /**
   * Milliseconds per plan step (one micro-batch of `batch` sequences; a whole training step when
   * `accumulate` is 1), with the optimizer's share; `perOptimizerStep` is `accumulate` of them.
   */
  ms: {
    aneCompute: number;
    dispatch: number;
    ioStaging: number;
    hostCompute: number;
    weightGradients: number;
    optimizer: number;
    total: number;
    perOptimizerStep: number;
  };
  /** The figures the milliseconds were computed from. */
  work: {
    deviceFlops: number;
    /** Device FLOPs in kernels whose buffers spill the SRAM (a slower rate). */
    spilledFlops: number;
    activationIoBytes: number;
    hostGemmFlops: number;
    hostElementwiseFlops: number;
    weightGradientFlops: number;
    optimizerBytes: number;
  };
  overlapRule: string;
  constants: StepTimeConstants;
  notes: string[];
}

/** The parts of a `PlanSummary` the estimate reads (a `PlanSummary` has them all). */
export type StepEstimateSource = Pick<
  PlanSummary,
  | 'chip'
  | 'seq'
  | 'batch'
  | 'parameters'
  | 'kernelRunsPerStep'
  | 'hostOpsByKind'
  | 'flopsPerStep'
  | 'ioBytesPerStep'
> &
  Partial<Pick<PlanSummary, 'sequencesPerPass'>> & {
    readonly programList: readonly Pick<
      PlanSummary['programList'][number],
      'flopsPerRun' | 'runsPerStep' | 'inputBytes' | 'outputBytes'
    >[];
    readonly model: Pick<PlanSummary['model'], 'hiddenSize'>;
    readonly memory: Pick<PlanSummary['memory'], 'stagedWeightBytes'>;
  };

export interface StepEstimateOptions {
  /** Micro-batches (plan steps of B sequences) per optimizer step (default 1): the Trainer's `accumulate`. */
  accumulate?: number;
}

export const STEP_ESTIMATE_OVERLAP_RULE =
  'total = max(ANE compute + dispatch + I/O staging + host ops, weight gradients) + optimizer: the dW GEMMs overlap the kernels (maderix/ANE §6.3), everything else runs in order';

// ---- the published figures the M4 constants are derived from -------------------------------------
//
// maderix/ANE's dynamic pipeline, Stories110M (D 768, HIDDEN 2048, 12 heads, 12 layers, SEQ 256),
// M4. reference/maderix-ane.md §6.7: "Dynamic breakdown at 110 ms (commit `cb474e1`) | ane_fwd 21,
// ane_bwd 28, io_fwd 12, io_bwd 15, silu 10, cls 13, rms 5 ms". Its step structure (§6.2, §6.3) is
// counted by hand below; the breakdown's chip is M4 by inference (§6.7 "Dynamic Stories110M |
// 87-115 (M4)", and "README.md says "tested on M4"" in the preamble).

const S = 256;
const D = 768;
const HIDDEN = 2048;
const LAYERS = 12;
/** §6.2 "10 compiled once, shared by all layers": 3 forward + 7 backward evaluations per layer. */
const MADERIX_EVALUATIONS = 10 * LAYERS; // 120
/** Weight elements per layer: Wq, Wk, Wv, Wo [768, 768] and W1, W3 [2048, 768], W2 [768, 2048]. */
const WEIGHTS_PER_LAYER = 4 * D * D + 3 * HIDDEN * D; // 7,077,888
/**
 * ANE FLOPs of one maderix step: the forward projections (§6.7 "forward = 2·NLAYERS·(sum of
 * weight-matrix elements)·SEQ (43,487 MFLOP for Stories110M)"), the same again for the input
 * gradients (the dW GEMMs run on the CPU), and attention: forward QKᵀ and P·V, backward in
 * `sdpaBwd1` (scores recomputed, dV, dP) and `sdpaBwd2` (dQ, dK): 7 products of 2·S²·D FLOPs each.
 */
const MADERIX_ANE_FLOPS = 2 * (2 * LAYERS * WEIGHTS_PER_LAYER * S) + 7 * LAYERS * 2 * S * S * D; // 95.44 GFLOP
/**
 * fp16 elements the host writes into or reads out of device surfaces per step (channels × S), from
 * the §6.2 table and §6.3's reads. Forward per layer: in xnorm 768, attn_out 768, x2norm‖x2 1536;
 * out attn_out‖Q‖K‖V 3072 ("read `attn_out, Q, K, V`"), o_out 768, x_next‖h1‖h3‖gate 6912.
 * Backward per layer: in dffn 768, dh1‖dh3 4096, α·dx2 768, Q‖K‖V‖da 3072, Q‖K 1536, dq 768,
 * dk‖dv 1536; out dsilu 2048, 768, da 768, dV 768, dQ‖dK 1536, 768, 768; probs‖dprobs 6144 copied
 * surface to surface (`io_copy`).
 */
const MADERIX_IO_FORWARD_CHANNELS = 768 + 768 + 1536 + 3072 + 768 + 6912; // 13,824
const MADERIX_IO_BACKWARD_CHANNELS =
  768 + 4096 + 768 + 3072 + 1536 + 768 + 1536 + (2048 + 768 + 768 + 768 + 1536 + 768 + 768) + 6144; // 26,112
const MADERIX_IO_BYTES = (MADERIX_IO_FORWARD_CHANNELS + MADERIX_IO_BACKWARD_CHANNELS) * S * LAYERS * 2; // 245.4 MB
/** §6.3: RMSNorm forward twice per layer plus the final one, 4 FLOPs per element as the IR counts them. */
const MADERIX_RMSNORM_FLOPS = (2 * LAYERS + 1) * D * S * 4; // 19.66 MFLOP
/**
 * §6.3 "logits `[CV, SEQ] = cembed[CV, DIM] · x_final[DIM, SEQ]`" and "`dy = cembedᵀ·dlogits`"
 * (`gcembed` is async, not in `cls`), over the compact vocabulary: "map the used ids (≈9.2K of 32K
 * for TinyStories)".
 */
const MADERIX_CLASSIFIER_FLOPS = 2 * (2 * 9200 * D * S); // 7.24 GFLOP

/** The published M4 breakdown, ms (§6.7, commit `cb474e1`). */
export const MADERIX_M4_BREAKDOWN = {
  aneFwd: 21,
  aneBwd: 28,
  ioFwd: 12,
  ioBwd: 15,
  silu: 10,
  cls: 13,
  rms: 5,
} as const;

/** What the M4 derivation assumes about maderix's step: its evaluations, ANE FLOPs, staged bytes. */
export const MADERIX_STORIES110M_STEP = {
  evaluations: MADERIX_EVALUATIONS,
  aneFlops: MADERIX_ANE_FLOPS,
  ioBytes: MADERIX_IO_BYTES,
  rmsnormFlops: MADERIX_RMSNORM_FLOPS,
  classifierFlops: MADERIX_CLASSIFIER_FLOPS,
} as const;

// §5.3 "Substack Part 2: a 256×256 matmul takes 0.101 ms, of which ~0.095 ms is XPC + IOKit overhead."
// (M4 Mac mini, §5.3 "Substack Part 2/3 (M4 Mac mini)").
const M4_DISPATCH_MS = 0.095;
// §6.7 ANE-only time "ane_fwd 21, ane_bwd 28": 49 ms, less 120 evaluations' fixed cost, is compute.
// = 95.44 GFLOP / 37.6 ms ≈ 2.54 TFLOP/s. Cross-check §5.3 "`inmem_bench.m` on M4 Mac mini (issue
// #3): … 2048ch 0.237 ms (2.27); 3072ch 0.421 ms (2.87)": single kernels of this size reach 2.3-2.9.
const M4_ANE_TFLOPS =
  MADERIX_ANE_FLOPS /
  ((MADERIX_M4_BREAKDOWN.aneFwd + MADERIX_M4_BREAKDOWN.aneBwd - MADERIX_EVALUATIONS * M4_DISPATCH_MS) * 1e9);
// §6.7 "io_fwd 12, io_bwd 15": 245.4 MB of fp16 surface bytes in 27 ms ≈ 9.1 GB/s.
const M4_STAGING_GBPS = MADERIX_IO_BYTES / ((MADERIX_M4_BREAKDOWN.ioFwd + MADERIX_M4_BREAKDOWN.ioBwd) * 1e6);
// §6.7 "cls 13": the two classifier sgemms (7.24 GFLOP) in 13 ms ≈ 557 GFLOP/s; the cross-entropy
// is inside those 13 ms too, so this is a lower bound on the sgemm rate. It is consistent with the
// dW queue (43.5 + 3.6 GFLOP) keeping up with a 91-110 ms step (≥ ~430 GFLOP/s).
const M4_HOST_GEMM_GFLOPS = MADERIX_CLASSIFIER_FLOPS / (MADERIX_M4_BREAKDOWN.cls * 1e6);
// §6.7 "rms 5": 25 RMSNorm forwards (19.66 MFLOP as the IR counts them) in 5 ms ≈ 3.9 GFLOP/s.
const M4_HOST_ELEMENTWISE_GFLOPS = MADERIX_RMSNORM_FLOPS / (MADERIX_M4_BREAKDOWN.rms * 1e6);
// §5.3 "Substack Part 2: matmul 2048² (24 MB working set) 5.7 TFLOPS vs 4096² (96 MB) 4.0 TFLOPS →
// on-chip SRAM ≈ 32 MB": a kernel with a buffer above 32 MiB (the rule table's perf-sram) runs at 4.0/5.7.
const SRAM_BYTES = 32 * 2 ** 20;
const SRAM_SPILL_RATE = 4.0 / 5.7;
// ASSUMPTION: the reference has no host memory-bandwidth figure and maderix's optimizer time is not
// in its breakdown (it runs every 10 micro-steps). 60 GB/s is assumed for a fused AdamW and the
// fp32→fp16 restaging on the M4's unified memory; a first run measures it.
const M4_HOST_MEMORY_GBPS = 60;

/**
 * maderix's M4 step as the model sees it, from the breakdown: ANE + dispatch (49), I/O (27), the
 * host work on its critical path (silu 10 + cls 13 + rms 5). 104 ms: the breakdown's labelled
 * parts (the remaining 6 of its 110 ms are unlabelled), inside the published 87-115 ms M4 range.
 */
const MADERIX_M4_MODEL_MS =
  MADERIX_M4_BREAKDOWN.aneFwd +
  MADERIX_M4_BREAKDOWN.aneBwd +
  MADERIX_M4_BREAKDOWN.ioFwd +
  MADERIX_M4_BREAKDOWN.ioBwd +
  MADERIX_M4_BREAKDOWN.silu +
  MADERIX_M4_BREAKDOWN.cls +
  MADERIX_M4_BREAKDOWN.rms;
const MADERIX_M4_HOST_AND_IO_MS =
  MADERIX_M4_MODEL_MS - MADERIX_M4_BREAKDOWN.aneFwd - MADERIX_M4_BREAKDOWN.aneBwd;
// §6.7 "Dynamic Stories110M | 87-115 (M4) … | README 91": the M4 figure other chips are compared with.
const MADERIX_M4_README_MS = 91;

/**
 * One host factor per calibrated family: the host-side rates (staging, GEMM, elementwise, memory)
 * are M4's × factor, fitted so that maderix's own step on that family comes out at M4's modelled
 * step × (that family's published step time / 91 ms).
 */
function fitHostFactor(dispatchMs: number, aneTflops: number, publishedMs: number): number {
  const target = (MADERIX_M4_MODEL_MS * publishedMs) / MADERIX_M4_README_MS;
  const ane = MADERIX_EVALUATIONS * dispatchMs + MADERIX_ANE_FLOPS / (aneTflops * 1e9);
  return MADERIX_M4_HOST_AND_IO_MS / (target - ane);
}

function scaledHost(
  factor: number,
): Pick<StepTimeConstants, 'stagingGBps' | 'hostGemmGflops' | 'hostElementwiseGflops' | 'hostMemoryGBps'> {
  return {
    stagingGBps: M4_STAGING_GBPS * factor,
    hostGemmGflops: M4_HOST_GEMM_GFLOPS * factor,
    hostElementwiseGflops: M4_HOST_ELEMENTWISE_GFLOPS * factor,
    hostMemoryGBps: M4_HOST_MEMORY_GBPS * factor,
  };
}

const M4: StepTimeConstants = {
  family: 'M4',
  basis: 'derived',
  valuesOf: 'M4',
  dispatchMs: M4_DISPATCH_MS,
  aneTflops: M4_ANE_TFLOPS,
  stagingGBps: M4_STAGING_GBPS,
  hostGemmGflops: M4_HOST_GEMM_GFLOPS,
  hostElementwiseGflops: M4_HOST_ELEMENTWISE_GFLOPS,
  hostMemoryGBps: M4_HOST_MEMORY_GBPS,
  sources: {
    dispatchMs:
      'maderix-ane.md §5.3: "a 256×256 matmul takes 0.101 ms, of which ~0.095 ms is XPC + IOKit overhead" (Substack Part 2, M4 Mac mini)',
    aneTflops:
      'maderix-ane.md §6.7: "ane_fwd 21, ane_bwd 28" ms for 120 evaluations and 95.44 GFLOP (§6.2 kernels): (49 − 120 × 0.095) ms → 2.54 TFLOP/s; §5.3 inmem_bench M4: 2.27-2.87 TFLOPS at 2048-3072 channels',
    stagingGBps:
      'maderix-ane.md §6.7: "io_fwd 12, io_bwd 15" ms for 245.4 MB of fp16 surface bytes (§6.2 kernels, §6.3 reads) → 9.1 GB/s',
    hostGemmGflops:
      'maderix-ane.md §6.7: "cls 13" ms for the two classifier sgemms over the ≈9.2K compact vocabulary (§6.3), 7.24 GFLOP → 557 GFLOP/s (a lower bound: the loss is inside those 13 ms)',
    hostElementwiseGflops:
      'maderix-ane.md §6.7: "rms 5" ms for 25 RMSNorm forwards, 19.66 MFLOP → 3.9 GFLOP/s',
    hostMemoryGBps:
      'assumption: no host bandwidth or optimizer time in the reference (maderix runs AdamW every 10 micro-steps); 60 GB/s',
  },
  calibration:
    'maderix-ane.md §6.7: Stories110M dynamic 87-115 ms/step on M4 (README 91); the breakdown at 110 ms gives every constant',
};

// §1.9 / §5.3: "M5 Max (PR #50) | 16 | 19.27 FP16" vs "M4 (README) | 16 | 18.6 FP16" (both ane_int8_bench).
const M5_ANE_TFLOPS = M4_ANE_TFLOPS * (19.27 / 18.6);
// §5.3 "`training/m5result.md` (M5): 256x256 conv sp64 — … steady eval ~0.07 ms (~120 GFLOPS)".
const M5_DISPATCH_MS = 0.07;
// §6.7 "73.5 (M5 Max, PR #50)" for Stories110M; "Dynamic Qwen3-0.6B | 412 (M4); 320 (M5 Max)" agrees (0.78 vs 0.81).
const M5_HOST_FACTOR = fitHostFactor(M5_DISPATCH_MS, M5_ANE_TFLOPS, 73.5);

const M5: StepTimeConstants = {
  family: 'M5',
  basis: 'calibrated',
  valuesOf: 'M5',
  dispatchMs: M5_DISPATCH_MS,
  aneTflops: M5_ANE_TFLOPS,
  ...scaledHost(M5_HOST_FACTOR),
  sources: {
    dispatchMs: 'maderix-ane.md §5.3: m5result.md (base M5) "steady eval ~0.07 ms" for a 256x256 conv',
    aneTflops: 'M4 × 19.27/18.6: maderix-ane.md §5.3 "M5 Max (PR #50) 19.27 FP16" vs "M4 (README) 18.6 FP16"',
    stagingGBps: `M4 × ${M5_HOST_FACTOR.toFixed(2)}: one host factor fitted to maderix-ane.md §6.7 "73.5 (M5 Max, PR #50)" vs 91 ms on M4`,
    hostGemmGflops: `M4 × ${M5_HOST_FACTOR.toFixed(2)} (the fitted host factor)`,
    hostElementwiseGflops: `M4 × ${M5_HOST_FACTOR.toFixed(2)} (the fitted host factor)`,
    hostMemoryGBps: `assumption: M4's 60 GB/s × ${M5_HOST_FACTOR.toFixed(2)} (the fitted host factor)`,
  },
  calibration:
    'maderix-ane.md §6.7: Stories110M dynamic 73.5 ms/step on an M5 Max (PR #50; Qwen3-0.6B 320 vs 412 on M4 agrees). The host factor is an M5 Max figure: the base M5 ran the static pipeline at 101-120 ms, no faster than M4 (§6.7)',
};

// §5.3 "M3 Pro | 16 | 9.98" vs "M4 (Mac mini) | 16 | 11.74" (the same 128x conv 512ch benchmark).
const M3_ANE_TFLOPS = M4_ANE_TFLOPS * (9.98 / 11.74);
// §6.7 "115.4 (M3 Ultra, PR #28)" for Stories110M, the only dynamic-pipeline M3 figure.
const M3_HOST_FACTOR = fitHostFactor(M4_DISPATCH_MS, M3_ANE_TFLOPS, 115.4);

const M3: StepTimeConstants = {
  family: 'M3',
  basis: 'calibrated',
  valuesOf: 'M3',
  dispatchMs: M4_DISPATCH_MS,
  aneTflops: M3_ANE_TFLOPS,
  ...scaledHost(M3_HOST_FACTOR),
  sources: {
    dispatchMs: "assumption: no M3 dispatch figure in the reference; M4's 0.095 ms",
    aneTflops:
      'M4 × 9.98/11.74: maderix-ane.md §5.3 "M3 Pro 9.98" vs "M4 (Mac mini) 11.74" (128x conv 512ch)',
    stagingGBps: `M4 × ${M3_HOST_FACTOR.toFixed(2)}: one host factor fitted to maderix-ane.md §6.7 "115.4 (M3 Ultra, PR #28)" vs 91 ms on M4`,
    hostGemmGflops: `M4 × ${M3_HOST_FACTOR.toFixed(2)} (the fitted host factor)`,
    hostElementwiseGflops: `M4 × ${M3_HOST_FACTOR.toFixed(2)} (the fitted host factor)`,
    hostMemoryGBps: `assumption: M4's 60 GB/s × ${M3_HOST_FACTOR.toFixed(2)} (the fitted host factor)`,
  },
  calibration: 'maderix-ane.md §6.7: Stories110M dynamic 115.4 ms/step on an M3 Ultra (PR #28)',
};

function extrapolatedFrom(family: ChipFamily, from: StepTimeConstants, why: string): StepTimeConstants {
  return { ...from, family, basis: 'extrapolated', valuesOf: from.valuesOf, calibration: why };
}

const M1_M2_NOTE =
  "no dynamic-pipeline figure for this family in the reference: M3's constants (the nearest family with one). The static pipeline's community results (maderix-ane.md §6.7: M1 Pro 148-163, M1 Max 143-167 vs M3 Ultra 91 ms) suggest the real step is slower";

/** The constants of every chip family, in one table. */
export const STEP_TIME_CONSTANTS: Readonly<Record<ChipFamily, StepTimeConstants>> = {
  M1: extrapolatedFrom('M1', M3, M1_M2_NOTE),
  M2: extrapolatedFrom('M2', M3, M1_M2_NOTE),
  M3,
  M4,
  M5,
};

/** The family a chip name belongs to: `M4`, `M4 Max` → M4; anything else → undefined. */
function familyOf(chip: string): ChipFamily | undefined {
  const match = /^(M\d+)(?:\s|$)/i.exec(chip.trim());
  const name = match?.[1]?.toUpperCase();
  return CHIP_FAMILIES.find((family) => family === name);
}

/** Host-op kinds whose native kernel is a gather or scatter: the IR counts a one-hot matmul, the kernel moves S·D values. */
const LOOKUP_KERNELS = new Set(['embeddingForward', 'embeddingBackward']);

/**
 * The estimated milliseconds of one step of `summary` (its batch, its seq) on `chip` (default: the
 * chip the plan was made for). An unknown chip name uses M4's constants, marked extrapolated.
 */
export function estimateStepTime(
  summary: StepEstimateSource,
  chip: string = summary.chip,
  options: StepEstimateOptions = {},
): StepTimeEstimate {
  const accumulate = options.accumulate ?? 1;
  if (!Number.isSafeInteger(accumulate) || accumulate < 1) {
    throw new RangeError(
      `estimateStepTime: accumulate must be a whole number ≥ 1, got ${String(accumulate)}`,
    );
  }
  const notes: string[] = [];
  const family = familyOf(chip);
  let constants: StepTimeConstants;
  if (family !== undefined) {
    constants = STEP_TIME_CONSTANTS[family];
    if (constants.basis === 'extrapolated') notes.push(`${family}: ${constants.calibration}`);
  } else {
    constants = extrapolatedFrom(
      'M4',
      M4,
      `unknown chip '${chip}': M4's constants (the calibration base); families with figures: ${CHIP_FAMILIES.join(', ')}`,
    );
    notes.push(constants.calibration);
  }

  const batch = summary.batch;
  // Passes of the plan per step (each computes sequencesPerPass sequences): per-pass figures times this.
  const passes = batch / (summary.sequencesPerPass ?? 1);
  const evaluations = summary.kernelRunsPerStep;
  const deviceFlops = summary.flopsPerStep.device;
  // Programs whose buffers spill the ~32 MB SRAM run at 4.0/5.7 of the rate (the rest of the FLOPs at the full rate).
  let spilledFlops = 0;
  for (const program of summary.programList)
    if (Math.max(program.inputBytes, program.outputBytes) > SRAM_BYTES)
      spilledFlops += program.flopsPerRun * program.runsPerStep;
  spilledFlops = Math.min(spilledFlops, deviceFlops);
  if (spilledFlops > 0)
    notes.push(
      `${(spilledFlops / 1e9).toFixed(2)} GFLOP run in kernels with a buffer above 32 MiB: counted at ${(SRAM_SPILL_RATE * 100).toFixed(0)}% of the rate (SRAM spill, maderix-ane.md §5.3)`,
    );
  // Weights sit in every run's input buffers but are staged once per optimizer step (below).
  const activationIoBytes = Math.max(
    0,
    summary.ioBytesPerStep.total - summary.memory.stagedWeightBytes * passes,
  );

  let hostGemmFlops = 0;
  let hostElementwiseFlops = 0;
  let weightGradientFlops = 0;
  for (const kind of summary.hostOpsByKind) {
    const flops = kind.flopsPerSequence * passes;
    if (kind.kind === 'weight_grad') weightGradientFlops += flops;
    else if (kind.kernels.includes('sgemm')) hostGemmFlops += flops;
    else if (kind.kernels.some((k) => LOOKUP_KERNELS.has(k)))
      hostElementwiseFlops += kind.count * summary.seq * summary.model.hiddenSize * batch;
    else hostElementwiseFlops += flops;
    if (kind.slowBecause.length > 0)
      notes.push(
        `host ops '${kind.kind}' take the slow generic path here; the estimate assumes native kernels`,
      );
  }

  // AdamW reads w, g, m, v and writes w, m, v (28 bytes per fp32 parameter); the global-norm clip
  // reads g once more (4). Restaging reads each fp32 weight and writes fp16 (6 bytes per staged element).
  const stagedElements = summary.memory.stagedWeightBytes / 2;
  const optimizerBytes = summary.parameters * 32 + stagedElements * 6;

  const aneCompute =
    (deviceFlops - spilledFlops) / (constants.aneTflops * 1e9) +
    spilledFlops / (constants.aneTflops * SRAM_SPILL_RATE * 1e9);
  const dispatch = evaluations * constants.dispatchMs;
  const ioStaging = activationIoBytes / (constants.stagingGBps * 1e6);
  const hostCompute =
    hostGemmFlops / (constants.hostGemmGflops * 1e6) +
    hostElementwiseFlops / (constants.hostElementwiseGflops * 1e6);
  const weightGradients = weightGradientFlops / (constants.hostGemmGflops * 1e6);
  const optimizer = optimizerBytes / (constants.hostMemoryGBps * 1e6) / accumulate;
  const total = Math.max(aneCompute + dispatch + ioStaging + hostCompute, weightGradients) + optimizer;

  return {
    chip,
    constantsFrom: constants.valuesOf,
    basis: constants.basis,
    measured: false,
    batch,
    accumulate,
    evaluations,
    ms: {
      aneCompute,
      dispatch,
      ioStaging,
      hostCompute,
      weightGradients,
      optimizer,
      total,
      perOptimizerStep: total * accumulate,
    },
    work: {
      deviceFlops,
      spilledFlops,
      activationIoBytes,
      hostGemmFlops,
      hostElementwiseFlops,
      weightGradientFlops,
      optimizerBytes,
    },
    overlapRule: STEP_ESTIMATE_OVERLAP_RULE,
    constants,
    notes,
  };
}

function ms(n: number): string {
  return `${n >= 100 ? n.toFixed(0) : n.toFixed(1)} ms`.padStart(8);
}

function mib(bytes: number): string {
  return `${(bytes / 1024 ** 2).toFixed(1)} MiB`;
}

function gflop(flops: number): string {
  return `${(flops / 1e9).toFixed(2)} GFLOP`;
}

/** The estimate as the short text block `ane-train plan` prints. */
export function formatStepEstimate(estimate: StepTimeEstimate): string[] {
  const c = estimate.constants;
  const m = estimate.ms;
  const basis = {
    derived: "derived from maderix/ANE's published M4 breakdown",
    calibrated: `M4's rescaled by published ${c.family} figures`,
    extrapolated: `extrapolated from ${estimate.constantsFrom}`,
  }[estimate.basis];
  const lines = [
    `Step-time estimate (${estimate.chip}, not measured): ${m.total.toFixed(0)} ms per ${
      estimate.accumulate > 1
        ? `micro-batch, ${m.perOptimizerStep.toFixed(0)} ms per optimizer step of ${estimate.accumulate}`
        : 'step'
    }; constants ${basis}. A first run on a Mac confirms or refutes it.`,
    `  ANE compute   ${ms(m.aneCompute)}  ${gflop(estimate.work.deviceFlops)} at ${c.aneTflops.toFixed(2)} TFLOP/s effective`,
    `  dispatch      ${ms(m.dispatch)}  ${estimate.evaluations} evaluations × ${c.dispatchMs} ms`,
    `  I/O staging   ${ms(m.ioStaging)}  ${mib(estimate.work.activationIoBytes)} of activations at ${c.stagingGBps.toFixed(1)} GB/s`,
    `  host ops      ${ms(m.hostCompute)}  norms, loss, lookups${estimate.work.hostGemmFlops > 0 ? ', host GEMMs' : ''}: in order with the kernels`,
    `  weight grads  ${ms(m.weightGradients)}  ${gflop(estimate.work.weightGradientFlops)} of dW GEMMs at ${c.hostGemmGflops.toFixed(0)} GFLOP/s, overlapping the above`,
    `  optimizer     ${ms(m.optimizer)}  AdamW and fp16 restaging at ${c.hostMemoryGBps.toFixed(0)} GB/s (assumed)${estimate.accumulate > 1 ? `, its share of one per ${estimate.accumulate} micro-batches` : ', every step'}`,
    `  total = max(ANE compute + dispatch + I/O + host ops, weight grads) + optimizer`,
  ];
  for (const note of estimate.notes) lines.push(`  note: ${note}`);
  return lines;
}
