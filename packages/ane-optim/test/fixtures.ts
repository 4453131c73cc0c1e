/**
 * Reads the PyTorch parity fixtures written by tools/refgen/optim_fixtures.py and turns a case's
 * specification (optimizer, hyper-parameters, groups, schedule) into ane-optim objects.
 */
import { readFileSync } from 'node:fs';
import {
  Adam,
  AdamW,
  constant,
  cosineDecay,
  joinSchedules,
  type KernelChoice,
  type LearningRate,
  Lion,
  linearSchedule,
  linearWarmup,
  type Optimizer,
  type Schedule,
  SGD,
  stepDecay,
} from '../src/index';

export type ScheduleSpec =
  | number
  | { kind: 'constant'; lr: number }
  | { kind: 'linear'; init: number; end: number; steps: number }
  | { kind: 'cosine'; init: number; decaySteps: number; floor: number }
  | { kind: 'step'; init: number; gamma: number; stepSize: number }
  | { kind: 'warmup'; warmupSteps: number; after: ScheduleSpec }
  | { kind: 'join'; schedules: ScheduleSpec[]; boundaries: number[] };

export interface ParityCase {
  name: string;
  optimizer: 'SGD' | 'Adam' | 'AdamW' | 'Lion';
  options: Record<string, unknown> & { learningRate: ScheduleSpec };
  groups?: Array<Record<string, unknown> & { params: string[] }>;
  clip?: number;
  steps: number;
  tensors: Array<{ name: string; shape: number[] }>;
  init: Record<string, string>;
  grads: Array<Record<string, string>>;
  lrs: number[];
  norms: number[] | null;
  afterFirstStep: Record<string, string>;
  final: Record<string, string>;
  state: Record<string, Record<string, string>>;
}

export function loadParityCases(): ParityCase[] {
  const file = new URL('./fixtures/optim-parity.json', import.meta.url);
  return (JSON.parse(readFileSync(file, 'utf8')) as { cases: ParityCase[] }).cases;
}

/** base64 little-endian fp32 bytes -> Float32Array (a fresh copy). */
export function f32(base64: string): Float32Array {
  const bytes = Buffer.from(base64, 'base64');
  const out = new Float32Array(bytes.length / 4);
  new Uint8Array(out.buffer).set(bytes);
  return out;
}

export function scheduleFromSpec(spec: ScheduleSpec): Schedule {
  if (typeof spec === 'number') return constant(spec);
  switch (spec.kind) {
    case 'constant':
      return constant(spec.lr);
    case 'linear':
      return linearSchedule(spec.init, spec.end, spec.steps);
    case 'cosine':
      return cosineDecay(spec.init, spec.decaySteps, spec.floor);
    case 'step':
      return stepDecay(spec.init, spec.gamma, spec.stepSize);
    case 'warmup':
      return linearWarmup(spec.warmupSteps, scheduleFromSpec(spec.after));
    case 'join':
      return joinSchedules(spec.schedules.map(scheduleFromSpec), spec.boundaries);
  }
}

// biome-ignore lint/suspicious/noExplicitAny: any optimizer of the four
export type AnyOptimizer = Optimizer<any, any>;

export function optimizerFromCase(c: ParityCase, kernels: KernelChoice = 'auto'): AnyOptimizer {
  const learningRate: LearningRate =
    typeof c.options.learningRate === 'number'
      ? c.options.learningRate
      : scheduleFromSpec(c.options.learningRate);
  const options = { ...c.options, learningRate, groups: c.groups ?? [], kernels };
  switch (c.optimizer) {
    case 'SGD':
      return new SGD(options as ConstructorParameters<typeof SGD>[0]);
    case 'Adam':
      return new Adam(options as ConstructorParameters<typeof Adam>[0]);
    case 'AdamW':
      return new AdamW(options as ConstructorParameters<typeof AdamW>[0]);
    case 'Lion':
      return new Lion(options as ConstructorParameters<typeof Lion>[0]);
  }
}

/**
 * The parity metric: max |actual - expected| over the tensor, relative to the tensor's largest
 * magnitude (the infinity-norm relative error). Elementwise relative error is the wrong yardstick
 * here: PyTorch itself rounds differently in its AVX2 body (fused multiply-add) and its scalar tail,
 * so a weight that passes near zero can differ by an ulp of the tensor's scale, not of its own.
 */
export function relativeError(actual: Float32Array, expected: Float32Array): number {
  if (actual.length !== expected.length) return Number.POSITIVE_INFINITY;
  let scale = 0;
  let worst = 0;
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i] as number;
    const e = expected[i] as number;
    scale = Math.max(scale, Math.abs(e));
    if (Object.is(a, e)) continue;
    const difference = Math.abs(a - e);
    worst = Number.isNaN(difference) ? Number.POSITIVE_INFINITY : Math.max(worst, difference);
  }
  if (worst === 0) return 0;
  return scale === 0 ? Number.POSITIVE_INFINITY : worst / scale;
}
