import { describe, expect, it } from 'vitest';
import { PRESETS } from './model/config';
import { buildTrainingGraph } from './model/training-graph';
import { describePlan, formatPlanSummary } from './plan-summary';
import {
  estimateStepTime,
  MADERIX_STORIES110M_STEP,
  STEP_TIME_CONSTANTS,
  type StepEstimateSource,
} from './step-estimate';

// Every figure below is an estimate from published numbers (shared/reference/maderix-ane.md), never a
// measurement: no machine here has an ANE.

type HostKind = StepEstimateSource['hostOpsByKind'][number];

function hostKind(kind: string, count: number, flopsPerSequence: number, kernels: string[]): HostKind {
  return { kind, count, flopsPerSequence, kernels, slowBecause: [], reasons: [], ruleIds: [] };
}

/** A synthetic summary small enough to do by hand: 2 sequences of 4 positions, hidden 8. */
function tinySummary(batch = 2): StepEstimateSource {
  return {
    chip: 'M4',
    seq: 4,
    batch,
    parameters: 1_000_000,
    kernelRunsPerStep: 10 * batch,
    programList: [{ flopsPerRun: 0.2538e9, runsPerStep: 10 * batch, inputBytes: 1000, outputBytes: 1000 }],
    model: { hiddenSize: 8 },
    // per step (already × batch), as describePlan reports them
    flopsPerStep: { device: 2.538e9 * batch, host: 0, total: 0 },
    // 1 MB of staged weights per sequence's runs, 9.087658666 MB of activations per sequence
    ioBytesPerStep: { deviceInputs: 0, deviceOutputs: 0, total: (1e6 + 9_087_658.666) * batch },
    memory: { stagedWeightBytes: 1e6 },
    hostOpsByKind: [
      hostKind('weight_grad', 3, 556.551876923077e6 * 10, ['sgemm']), // 10 ms per sequence at M4's GEMM rate
      hostKind('rmsnorm', 2, 3.93216e6, ['rmsnormForward']), // 1 ms per sequence
      hostKind('scatter_add', 1, 1e12, ['embeddingBackward']), // the IR's one-hot count is ignored: 4 · 8 values
      hostKind('linear', 1, 556.551876923077e6, ['sgemm']), // a host classifier: 1 ms per sequence
    ],
  };
}

describe('the chip table', () => {
  it("derives M4's constants from maderix's published Stories110M breakdown (hand arithmetic)", () => {
    const m4 = STEP_TIME_CONSTANTS.M4;
    // §5.3: ~0.095 ms XPC + IOKit overhead per evaluation
    expect(m4.dispatchMs).toBe(0.095);
    // 12 layers × 7,077,888 weights × 2 FLOPs × 256 positions = 43,486,543,872 (§6.7 "43,487 MFLOP")
    // × 2 (forward and dx) + attention 7 × 12 × 2·256²·768 = 95,428,804,608 FLOPs
    expect(MADERIX_STORIES110M_STEP.aneFlops).toBe(95_428_804_608);
    expect(MADERIX_STORIES110M_STEP.evaluations).toBe(120);
    // ane_fwd 21 + ane_bwd 28 = 49 ms, less 120 × 0.095 = 11.4 ms → 37.6 ms of compute
    expect(m4.aneTflops).toBeCloseTo(95.428804608 / 37.6, 6); // 2.538
    // (13,824 + 26,112) channels × 256 × 12 layers × 2 bytes = 245,366,784 bytes in io 12 + 15 ms
    expect(MADERIX_STORIES110M_STEP.ioBytes).toBe(245_366_784);
    expect(m4.stagingGBps).toBeCloseTo(245.366784 / 27, 6); // 9.09
    // cls 13 ms: 2 × 2·9200·768·256 = 7,235,174,400 FLOPs
    expect(m4.hostGemmGflops).toBeCloseTo(7235.1744 / 13, 6); // 556.6
    // rms 5 ms: 25 × 768 × 256 × 4 = 19,660,800 FLOPs
    expect(m4.hostElementwiseGflops).toBeCloseTo(19.6608 / 5, 6); // 3.93
    expect(m4.hostMemoryGBps).toBe(60); // the stated assumption
    expect(m4.sources.hostMemoryGBps).toMatch(/^assumption/);
    expect(m4.basis).toBe('derived');
  });

  it("scales M5's and M3's ANE rate by their published peak ratios", () => {
    const { M3, M4, M5 } = STEP_TIME_CONSTANTS;
    expect(M5.aneTflops / M4.aneTflops).toBeCloseTo(19.27 / 18.6, 10);
    expect(M5.dispatchMs).toBe(0.07);
    expect(M3.aneTflops / M4.aneTflops).toBeCloseTo(9.98 / 11.74, 10);
    expect(M5.basis).toBe('calibrated');
    expect(M3.basis).toBe('calibrated');
    // one host factor per calibrated family: every host rate moves together
    expect(M5.stagingGBps / M4.stagingGBps).toBeCloseTo(M5.hostGemmGflops / M4.hostGemmGflops, 10);
    expect(M5.hostMemoryGBps / M4.hostMemoryGBps).toBeCloseTo(
      M5.hostElementwiseGflops / M4.hostElementwiseGflops,
      10,
    );
  });

  it('marks M1 and M2 as extrapolated from M3', () => {
    for (const family of ['M1', 'M2'] as const) {
      const row = STEP_TIME_CONSTANTS[family];
      expect(row.basis).toBe('extrapolated');
      expect(row.valuesOf).toBe('M3');
      expect(row.aneTflops).toBe(STEP_TIME_CONSTANTS.M3.aneTflops);
    }
  });
});

describe('estimateStepTime', () => {
  it('does the arithmetic of a tiny synthetic summary as computed by hand (M4)', () => {
    const estimate = estimateStepTime(tinySummary(2));
    const ms = estimate.ms;
    expect(estimate.measured).toBe(false);
    expect(estimate.basis).toBe('derived');
    expect(estimate.constantsFrom).toBe('M4');
    // 2 × 2.538 GFLOP at 2.538 TFLOP/s
    expect(ms.aneCompute).toBeCloseTo((2 * 2.538) / 2.5380001225531914, 9); // ≈ 2 ms
    // 20 evaluations × 0.095 ms
    expect(ms.dispatch).toBeCloseTo(1.9, 12);
    // the staged weights (1 MB per sequence) are not activations: 2 × 9.0877 MB at 9.0877 GB/s = 2 ms
    expect(estimate.work.activationIoBytes).toBeCloseTo(2 * 9_087_658.666, 3);
    expect(ms.ioStaging).toBeCloseTo(2, 6);
    // host: rmsnorm 2 × 1 ms, the classifier 2 × 1 ms, the scatter-add 2 × (4 × 8 values) at 3.93 GFLOP/s
    expect(ms.hostCompute).toBeCloseTo(2 + 2 + (2 * 32) / 3.93216e6, 9);
    // dW: 2 × 10 ms, overlapped
    expect(ms.weightGradients).toBeCloseTo(20, 9);
    // optimizer: 1e6 parameters × 32 B + 0.5e6 staged fp16 elements × 6 B = 35 MB at 60 GB/s
    expect(estimate.work.optimizerBytes).toBe(35e6);
    expect(ms.optimizer).toBeCloseTo(35 / 60, 12);
    // serial lane 2 + 1.9 + 2 + 4 ≈ 9.9 ms < dW 20 ms: the total is the dW lane plus the optimizer
    expect(ms.total).toBeCloseTo(20 + 35 / 60, 9);
  });

  it('counts a kernel whose buffer spills the 32 MiB SRAM at 4.0/5.7 of the rate', () => {
    const source = tinySummary(1);
    const spilled = {
      ...source,
      programList: [{ flopsPerRun: 0.2538e9, runsPerStep: 10, inputBytes: 33 * 2 ** 20, outputBytes: 1000 }],
    };
    const base = estimateStepTime(source).ms.aneCompute;
    const estimate = estimateStepTime(spilled);
    expect(estimate.work.spilledFlops).toBeCloseTo(2.538e9, 0);
    expect(estimate.ms.aneCompute).toBeCloseTo((base * 5.7) / 4.0, 9);
    expect(estimate.notes.join(' ')).toMatch(/SRAM spill/);
  });

  it('takes the serial lane when it is longer, and spreads the optimizer over accumulated steps', () => {
    const source = { ...tinySummary(2), hostOpsByKind: [] };
    const estimate = estimateStepTime(source, 'M4', { accumulate: 5 });
    const serial = estimate.ms.aneCompute + estimate.ms.dispatch + estimate.ms.ioStaging;
    expect(estimate.ms.weightGradients).toBe(0);
    expect(estimate.ms.optimizer).toBeCloseTo(35 / 60 / 5, 12);
    expect(estimate.ms.total).toBeCloseTo(serial + 35 / 60 / 5, 12);
    expect(estimate.ms.perOptimizerStep).toBeCloseTo(5 * serial + 35 / 60, 12);
    expect(() => estimateStepTime(source, 'M4', { accumulate: 0 })).toThrow(
      /accumulate must be a whole number/,
    );
  });

  it("handles an unknown chip with M4's constants, marked extrapolated; a variant name maps to its family", () => {
    const unknown = estimateStepTime(tinySummary(), 'A17 Pro');
    expect(unknown.chip).toBe('A17 Pro');
    expect(unknown.basis).toBe('extrapolated');
    expect(unknown.constantsFrom).toBe('M4');
    expect(unknown.notes.join(' ')).toContain("unknown chip 'A17 Pro'");
    expect(unknown.ms.total).toBeCloseTo(estimateStepTime(tinySummary(), 'M4').ms.total, 12);
    const max = estimateStepTime(tinySummary(), 'M5 Max');
    expect(max.constantsFrom).toBe('M5');
    expect(max.basis).toBe('calibrated');
    const m1 = estimateStepTime(tinySummary(), 'M1');
    expect(m1.basis).toBe('extrapolated');
    expect(m1.constantsFrom).toBe('M3');
    expect(m1.notes.join(' ')).toMatch(/no dynamic-pipeline figure/);
  });

  // maderix's own dynamic Stories110M step as the model sees it, from its kernel table (§6.2, §6.3):
  // 120 evaluations, 95.43 GFLOP on the ANE, 245.4 MB of activations, 25 RMSNorms and the two
  // compact-vocabulary classifier sgemms on the critical path, 47.1 GFLOP of dW on the async queue,
  // AdamW every 10 micro-steps (`--accum` 10). The SwiGLU derivative on the CPU (silu 10 ms) is left out.
  function maderixStep(): StepEstimateSource {
    const step = MADERIX_STORIES110M_STEP;
    return {
      chip: 'M4',
      seq: 256,
      batch: 1,
      parameters: 109_530_000, // §6.1 "109.53M"
      kernelRunsPerStep: step.evaluations,
      // its largest surface, ffnFused, is 10.2 MB (§4.6): no kernel spills the SRAM
      programList: [
        { flopsPerRun: step.aneFlops / 120, runsPerStep: 120, inputBytes: 10.2e6, outputBytes: 3.5e6 },
      ],
      model: { hiddenSize: 768 },
      flopsPerStep: { device: step.aneFlops, host: 0, total: 0 },
      ioBytesPerStep: { deviceInputs: 0, deviceOutputs: 0, total: step.ioBytes },
      memory: { stagedWeightBytes: 0 },
      hostOpsByKind: [
        hostKind('rmsnorm', 25, step.rmsnormFlops, ['rmsnormForward']),
        hostKind('classifier', 2, step.classifierFlops, ['sgemm']),
        // dW of 12 layers (43.49 GFLOP) and the compact classifier's (2·9200·768·256)
        hostKind('weight_grad', 85, 43_486_543_872 + 2 * 9200 * 768 * 256, ['sgemm']),
      ],
    };
  }

  it("puts maderix's own step inside its published M4 range, 87-115 ms (calibration check, not a measurement)", () => {
    const estimate = estimateStepTime(maderixStep(), 'M4', { accumulate: 10 });
    // the parts the constants came from come back: ANE-only 21 + 28, I/O 12 + 15, cls 13 + rms 5
    expect(estimate.ms.aneCompute + estimate.ms.dispatch).toBeCloseTo(49, 6);
    expect(estimate.ms.ioStaging).toBeCloseTo(27, 6);
    expect(estimate.ms.hostCompute).toBeCloseTo(18, 6);
    // the dW queue (47.1 GFLOP at 557 GFLOP/s ≈ 85 ms) hides behind the 94 ms serial lane
    expect(estimate.ms.weightGradients).toBeLessThan(94);
    expect(estimate.ms.total).toBeGreaterThanOrEqual(87);
    expect(estimate.ms.total).toBeLessThanOrEqual(115);
  });

  it("keeps maderix's own step on M5 near the published M5 Max / M4 ratio, 73.5 / 91", () => {
    const m4 = estimateStepTime(maderixStep(), 'M4', { accumulate: 10 }).ms.total;
    const m5 = estimateStepTime(maderixStep(), 'M5', { accumulate: 10 }).ms.total;
    // within 5% of the ratio the host factor was fitted to (the fit includes silu, left out here)
    expect(m5 / m4).toBeGreaterThan((73.5 / 91) * 0.95);
    expect(m5 / m4).toBeLessThan((73.5 / 91) * 1.05);
  });
});

describe('the estimate of a real plan', () => {
  const stories110M = buildTrainingGraph(PRESETS.stories110M, { seq: 256 });

  it('puts Stories110M (seq 256, batch 1) on M4 within 1× to 3× maderix/ANE 91 ms (calibration target, not a measurement)', () => {
    // The calibration target is maderix/ANE's published 91 ms/step (87-115 range) on M4. Our plan
    // does more per step than maderix's: AdamW and restaging every step (maderix: every 10), the
    // classifier on the ANE over all 32000 ids and the loss over all of them on the host (maderix:
    // ≈9.2K used ids on the CPU), more activation bytes. So the band is stated wide, and the
    // comparable configuration (accumulate 10, maderix's setting) is held to 1× to 2×.
    const every = describePlan(stories110M).estimate;
    expect(every.chip).toBe('M4');
    expect(every.basis).toBe('derived');
    expect(every.ms.total).toBeGreaterThan(91);
    expect(every.ms.total).toBeLessThan(3 * 91);
    const accumulated = describePlan(stories110M, { accumulate: 10 }).estimate;
    expect(accumulated.accumulate).toBe(10);
    expect(accumulated.ms.total).toBeGreaterThan(91);
    expect(accumulated.ms.total).toBeLessThan(2 * 91);
    // our plan evaluates 101 kernels a sequence (maderix 120)
    expect(every.evaluations).toBe(101);
    expect(every.ms.dispatch).toBeCloseTo(101 * 0.095, 9);
  });

  it('grows with the batch: every part but the optimizer scales with the sequences', () => {
    const tiny = buildTrainingGraph({ ...PRESETS.tiny, num_hidden_layers: 2 }, { seq: 32 });
    let previous = 0;
    for (const batch of [1, 2, 4, 8]) {
      const estimate = describePlan(tiny, { batch }).estimate;
      expect(estimate.ms.total).toBeGreaterThan(previous);
      previous = estimate.ms.total;
    }
    const one = describePlan(tiny, { batch: 1 }).estimate;
    const four = describePlan(tiny, { batch: 4 }).estimate;
    expect(four.ms.aneCompute).toBeCloseTo(4 * one.ms.aneCompute, 9);
    expect(four.ms.dispatch).toBeCloseTo(4 * one.ms.dispatch, 9);
    expect(four.ms.ioStaging).toBeCloseTo(4 * one.ms.ioStaging, 9);
    expect(four.ms.optimizer).toBeCloseTo(one.ms.optimizer, 12);
  });

  it('prints a short "not measured" block and keeps the estimate in the JSON', () => {
    const summary = describePlan(stories110M);
    const text = formatPlanSummary(summary);
    expect(text).toContain('Step-time estimate (M4, not measured)');
    expect(text).toContain('101 evaluations × 0.095 ms');
    const json = JSON.parse(JSON.stringify(summary));
    expect(json.estimate.measured).toBe(false);
    expect(json.estimate.ms.total).toBeCloseTo(summary.estimate.ms.total, 9);
    // a run report from before the estimate existed still renders
    const { estimate: _, ...old } = summary;
    expect(formatPlanSummary(old as typeof summary)).not.toContain('Step-time estimate');
  });
});
