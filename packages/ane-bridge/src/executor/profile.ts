/**
 * The per-run profile of a plan executable: where the time of one `run` went (each step, each
 * program, each host-op kind, staging) and how long neither the device nor the host was busy.
 */
import type { HostRunMode } from './host-ops';

/** One step of one sequence. Times are milliseconds from the start of the run. */
export interface StepTiming {
  /** `kernel3 (P1)` or `host rmsnorm 'layers.0.attn_norm'`. */
  readonly label: string;
  readonly kind: 'kernel' | 'host';
  /** The sequence of the batch (0 without a batch). */
  readonly sequence: number;
  readonly startMs: number;
  readonly endMs: number;
  /** Time spent staging this step's inputs (and, for kernels, nothing else). */
  readonly stagingMs: number;
  /** Kernels: the program it ran (`P1`). */
  readonly program?: string;
  /**
   * Kernels: whether it ran on the JS thread (`runSync`, or on the simulator a kernel whose
   * shortest run so far took at most 1 ms) rather than handed to the device (`kernel.run`).
   */
  readonly onJsThread?: boolean;
  /** Host ops: the host-op kind, and the kernels that ran it ('generic' for the float32 evaluator). */
  readonly hostKind?: string;
  readonly kernels?: readonly string[];
  /**
   * Host ops: how the kernels ran: `sync` on the JS thread, `async` off it, `background` off it at
   * background priority (weight gradients beside the simulated device).
   */
  readonly hostMode?: HostRunMode;
}

export interface RunProfile {
  /** Wall time of the run. */
  readonly totalMs: number;
  readonly steps: readonly StepTiming[];
  /** Device time per program (`P0`, `P1`, …): runs and total milliseconds. */
  readonly programs: Readonly<Record<string, { readonly runs: number; readonly ms: number }>>;
  /** Host time per host-op kind, with the kernels that ran it. */
  readonly hostOps: Readonly<
    Record<string, { readonly runs: number; readonly ms: number; readonly kernels: readonly string[] }>
  >;
  /** Time converting and copying values into and out of device buffers (on the JS thread). */
  readonly stagingMs: number;
  /** Time in device kernels (excluding staging). */
  readonly deviceMs: number;
  /** Time in host ops (excluding staging), summed over host ops (weight gradients may run at once). */
  readonly hostMs: number;
  /** Wall time during which no kernel, host op or staging was running. */
  readonly idleMs: number;
  /**
   * Weights staged as background work while the run went on (on the simulator, those of at least
   * 1M values a run must restage): by the weight's name, its values, and when. Not in `stagingMs`.
   */
  readonly backgroundStaging: readonly BackgroundStaging[];
}

export interface BackgroundStaging {
  readonly source: string;
  readonly values: number;
  readonly startMs: number;
  readonly endMs: number;
}

/** Collects timings during one run. */
export class ProfileRecorder {
  private readonly started = performance.now();
  private readonly steps: StepTiming[] = [];
  private readonly staging: Array<[number, number]> = [];
  private readonly inBackground: BackgroundStaging[] = [];

  now(): number {
    return performance.now() - this.started;
  }

  /** Records a stretch of staging (its own busy interval). */
  staged(startMs: number, endMs: number): void {
    this.staging.push([startMs, endMs]);
  }

  /** Records a weight staged as background work. */
  stagedInBackground(staging: BackgroundStaging): void {
    this.inBackground.push(staging);
  }

  step(timing: StepTiming): void {
    this.steps.push(timing);
  }

  finish(): RunProfile {
    const totalMs = this.now();
    const programs: Record<string, { runs: number; ms: number }> = {};
    const hostOps: Record<string, { runs: number; ms: number; kernels: readonly string[] }> = {};
    let deviceMs = 0;
    let hostMs = 0;
    const busy: Array<[number, number]> = [...this.staging];
    for (const step of this.steps) {
      const ms = step.endMs - step.startMs;
      busy.push([step.startMs, step.endMs]);
      if (step.kind === 'kernel') {
        deviceMs += ms;
        const program = step.program ?? step.label;
        const entry = programs[program] ?? { runs: 0, ms: 0 };
        programs[program] = entry;
        entry.runs++;
        entry.ms += ms;
      } else {
        hostMs += ms;
        const kind = step.hostKind ?? step.label;
        const entry = hostOps[kind] ?? { runs: 0, ms: 0, kernels: step.kernels ?? [] };
        hostOps[kind] = entry;
        entry.runs++;
        entry.ms += ms;
      }
    }
    const stagingMs = this.staging.reduce((sum, [a, b]) => sum + (b - a), 0);
    return {
      totalMs,
      steps: this.steps,
      programs,
      hostOps,
      stagingMs,
      deviceMs,
      hostMs,
      idleMs: Math.max(0, totalMs - unionLength(busy)),
      backgroundStaging: this.inBackground,
    };
  }
}

/** Total length covered by a set of intervals. */
function unionLength(intervals: Array<[number, number]>): number {
  const sorted = [...intervals].sort((a, b) => a[0] - b[0]);
  let total = 0;
  let end = Number.NEGATIVE_INFINITY;
  for (const [a, b] of sorted) {
    if (b <= end) continue;
    total += b - Math.max(a, end);
    end = b;
  }
  return total;
}

/** A readable summary of a profile. */
export function formatProfile(profile: RunProfile): string {
  const ms = (x: number) => `${x.toFixed(2)} ms`;
  const share = (x: number) => `${((100 * x) / Math.max(profile.totalMs, 1e-9)).toFixed(1)}%`;
  const lines = [
    `run: ${ms(profile.totalMs)}; device ${ms(profile.deviceMs)}, host ${ms(profile.hostMs)}, staging ${ms(profile.stagingMs)} (${share(profile.stagingMs)}), idle ${ms(profile.idleMs)}`,
  ];
  for (const [program, entry] of Object.entries(profile.programs))
    lines.push(`  ${program}: ${entry.runs} runs, ${ms(entry.ms)}`);
  for (const [kind, entry] of Object.entries(profile.hostOps))
    lines.push(`  host ${kind}: ${entry.runs} runs, ${ms(entry.ms)} (${entry.kernels.join(', ')})`);
  return lines.join('\n');
}
