/**
 * The plan executor: `device.load(plan)` compiles each distinct program of a partitioned graph once,
 * allocates every buffer once, and runs the plan's steps: device kernels on the device, host ops
 * on native host kernels (the registry in `host-ops.ts`), values staged between them by native
 * strided conversions (`staging.ts`). `run` overlaps device and host work where the plan's
 * dependencies allow; `runSync` runs the steps in plan order on the calling thread.
 *
 * Values live in slots, one per value the plan moves between steps, named as the plan names them
 * (`PackedSegment.source`, `HostOp.inputSources`: a graph output's own name, else the node's):
 * - sources: graph inputs (one per sequence of the batch) and trainable weights (shared), fp32 or
 *   int32 host arrays written by feeds and `write`;
 * - computed values: on the device (a segment of a kernel's output buffer, decoded to a host
 *   array only when a host op, an output or `read` needs it) or on the host (a host op's result);
 * - constants and frozen weights a host op reads, from the graph.
 *
 * What a slot holds is named by its version and, for a graph input, the sequence being run: a
 * value no step, feed or write has rewritten since has the same (version, sequence). Host ops
 * rely on it to reuse what another op derived from a value (`HostValues.derived`: the loss head's
 * softmax, computed once per sequence for both the loss and its gradient).
 */
import type { HostOp, Plan, PlanStep, Tensor } from 'ane-ir';
import { constantNumbers } from 'ane-ir';
import type { Device } from '../device/device';
import { copyOption, type Kernel } from '../device/kernel';
import { didYouMean } from '../did-you-mean';
import { DeviceError, PlanError, PlanFeedError } from '../errors';
import { fp16ToFp32, hostKernels, SGD_ADD, sgdUpdate } from '../kernels';
import { checkTypedArray } from '../kernels/checks';
import {
  type BoundHostOp,
  bindHostOp,
  type DerivedValues,
  type HostArray,
  type HostRunMode,
  type HostValues,
} from './host-ops';
import { formatProfile, ProfileRecorder, type RunProfile } from './profile';
import {
  copyDeviceValue,
  type PortElements,
  portElements,
  type SegmentPlacement,
  segmentPlacement,
  stageValue,
  stageValueInBackground,
  unstageValue,
} from './staging';

export interface LoadOptions {
  /**
   * Sequences per run (default 1). The IR has no batch axis: each graph input takes `batch` values
   * back to back (sequence-major), weights are shared, and every step runs once per sequence on
   * the programs the plan compiled (no recompile). Graph outputs come back `batch` values back to
   * back, or summed over the batch (`sumOverBatch`).
   */
  batch?: number;
  /** Graph outputs summed over the batch instead of returned per sequence (weight gradients, losses). */
  sumOverBatch?: readonly string[];
}

/** A value for one source: fp32 values, fp16 bit patterns (`Uint16Array`, fp16 sources), or int32 values. */
export type PlanFeed = Float32Array | Float64Array | Uint16Array | Int32Array | readonly number[];
export type PlanFeeds = Readonly<Record<string, PlanFeed>>;
/** The graph's outputs by the names given to `g.output`. */
export type PlanOutputs = Record<string, HostArray>;

export interface PlanRunOptions {
  /** Return copies of the outputs (default false: the executable's own arrays, overwritten by the next run). */
  copy?: boolean;
}

/** A source the caller supplies. */
export interface PlanSource {
  readonly name: string;
  readonly role: 'input' | 'param';
  readonly dtype: string;
  readonly shape: readonly number[];
  /** Values a feed or `write` takes: the value's size, times the batch for inputs. */
  readonly length: number;
}

interface DeviceHome {
  readonly kernel: number;
  readonly port: PortElements;
  readonly place: SegmentPlacement;
}

interface Slot {
  readonly name: string;
  readonly tensor: Tensor;
  readonly role: 'input' | 'param' | 'constant' | 'computed';
  /** Elements of one value. */
  readonly size: number;
  /** Sources: every sequence's values; computed values: one sequence's, allocated on first use. */
  host: HostArray | undefined;
  /** The values of the sequence being run. */
  current: HostArray | undefined;
  /** Sources: bumped by each write. Computed values: bumped each time the producer runs. */
  version: number;
  /** Computed on the device: the version decoded into `host`. */
  hostVersion: number;
  readonly producer?: PlanStep;
  readonly device?: DeviceHome;
}

/** One segment of a kernel input: which slot fills it, and the version it holds. */
interface StagedSegment {
  readonly slot: Slot;
  readonly port: PortElements;
  readonly place: SegmentPlacement;
  stagedVersion: number;
  /** A large weight being staged as background work (`EARLY_STAGING_ELEMENTS`): its kernel waits. */
  inBackground?: Promise<void> | undefined;
}

interface KernelStep {
  readonly kind: 'kernel';
  readonly label: string;
  readonly program: string;
  readonly kernel: Kernel;
  readonly inputs: readonly StagedSegment[];
  readonly produces: readonly Slot[];
  readonly dependsOn: readonly number[];
}

interface HostStep {
  readonly kind: 'host';
  readonly label: string;
  readonly op: HostOp;
  readonly bound: BoundHostOp;
  readonly slowBecause?: string;
  readonly reads: readonly Slot[];
  /** Slots it reads as fp16 bits where a kernel left them (`BoundHostOp.readsHalf`): not decoded first. */
  readonly readsHalf: ReadonlySet<Slot>;
  readonly produces: readonly Slot[];
  readonly dependsOn: readonly number[];
}

type Step = KernelStep | HostStep;

/** An array a host op derived from a slot's values (`HostValues.derived`), and which values those were. */
interface DerivedRecord {
  readonly array: Float32Array;
  readonly version: number;
  readonly sequence: number;
}

/** Host ops producing at most this many elements run on the JS thread when nothing else is in flight. */
const SMALL_HOST_OP_ELEMENTS = 1 << 18;

/**
 * Weight gradients (GEMMs into arrays of their own, no shared state) in flight at once. The next
 * host op starts only when the JS thread gets back to the event loop, which a simulated kernel
 * holds for its whole run: one at a time, the dW of a layer trailed its kernels by a dW per kernel.
 * Each waits on a libuv thread (on a real device the first spreads over the kernels' pool); three
 * leave libuv's default four one for other work.
 */
const WEIGHT_GRADS_IN_FLIGHT = 3;

/**
 * Weights at least this large (values) that a run must restage are staged as background work when
 * the run starts, on the simulator: the classifier's table (9.2M values for stories15M, staged
 * twice, transposed for the logits kernel) took 4–5 ms each on the critical path, while the
 * forward pass leaves a core idle part of the time. Their kernels wait for them.
 */
const EARLY_STAGING_ELEMENTS = 1 << 20;

/**
 * On the simulator, a kernel whose shortest run so far took at most this long runs with runSync:
 * `kernel.run` first yields to the event loop (or hands the run to the device thread), a round
 * trip worth more than what a kernel this small gains from it (the JS thread's work meanwhile is
 * only dispatching; the weight gradients run on threads of their own either way). Paired, the tiny
 * preset's training step (batch 8, seq 64: 26 kernels a sequence, most under 0.2 ms) was 5-12%
 * faster, stories15M's 1-3.5%.
 */
const SMALL_SIM_KERNEL_MS = 1;

const isFloatDtype = (dtype: string) => dtype === 'fp16' || dtype === 'fp32';

/**
 * A host array for a value. Over a SharedArrayBuffer: the native async kernels then work on the
 * memory in place (over a plain ArrayBuffer they must copy every array in and out, since a plain
 * buffer can be detached while they run).
 */
function allocate(tensor: Tensor, count: number): HostArray {
  let memory: SharedArrayBuffer;
  try {
    memory = new SharedArrayBuffer(count * 4);
  } catch (error) {
    if (!(error instanceof RangeError)) throw error;
    throw new PlanError(
      `cannot allocate ${count * 4} bytes for '${tensor.name}' (${tensor.dtype}[${tensor.shape.join(', ')}]${count > tensor.size ? ` × batch ${count / tensor.size}` : ''}): ${error.message}; use a smaller batch or model`,
    );
  }
  return isFloatDtype(tensor.dtype) ? new Float32Array(memory) : new Int32Array(memory);
}

function checkPlan(plan: unknown): asserts plan is Plan {
  const p = plan as Partial<Plan> | null;
  const fields = ['steps', 'kernels', 'programs', 'hostOps', 'outputs'] as const;
  if (p === null || typeof p !== 'object' || fields.some((f) => !Array.isArray(p[f]))) {
    throw new PlanError(
      `device.load takes the Plan that ane-ir's partition(graph) returns (with ${fields.join(', ')}), got ${p === null ? 'null' : typeof p === 'object' ? `an object with keys ${Object.keys(p).slice(0, 6).join(', ') || 'none'}` : typeof p}`,
    );
  }
}

function checkOptions(options: unknown, plan: Plan): { batch: number; sumOverBatch: Set<string> } {
  if (options === undefined) return { batch: 1, sumOverBatch: new Set() };
  if (options === null || typeof options !== 'object' || Array.isArray(options))
    throw new PlanError(
      `device.load options must be an object ({ batch?, sumOverBatch? }), got ${String(options)}`,
    );
  const known = ['batch', 'sumOverBatch'];
  for (const key of Object.keys(options)) {
    if (!known.includes(key)) {
      throw new PlanError(
        `unknown device.load option '${key}'${didYouMean(key, known)}; the options are ${known.join(', ')}`,
      );
    }
  }
  const { batch = 1, sumOverBatch = [] } = options as LoadOptions;
  if (!Number.isSafeInteger(batch) || batch < 1)
    throw new PlanError(
      `device.load option batch must be a whole number ≥ 1 (sequences per run), got ${String(batch)}`,
    );
  if (!Array.isArray(sumOverBatch))
    throw new PlanError('device.load option sumOverBatch must be an array of output names');
  const names = plan.outputs.map((o) => o.name);
  for (const name of sumOverBatch) {
    const output = plan.outputs.find((o) => o.name === name);
    if (output === undefined) {
      throw new PlanError(
        `sumOverBatch names '${String(name)}', which is no output of the plan${didYouMean(String(name), names)}; the outputs are ${names.join(', ')}`,
      );
    }
    if (!isFloatDtype(output.tensor.dtype))
      throw new PlanError(
        `sumOverBatch: output '${name}' is ${output.tensor.dtype}; only floating-point outputs can be summed`,
      );
  }
  return { batch, sumOverBatch: new Set(sumOverBatch) };
}

/** A partitioned graph loaded on a device: run it with feeds, read its outputs. Dispose it when done. */
export class PlanExecutable implements Disposable {
  readonly batch: number;
  /** Distinct programs the plan compiled (each once, whatever the number of kernels running it). */
  readonly programCount: number;
  private readonly steps: Step[] = [];
  private readonly slots = new Map<string, Slot>();
  private readonly slotOfTensor = new Map<Tensor, Slot>();
  private readonly kernels: Kernel[] = [];
  private readonly sumOverBatch: Set<string>;
  private readonly outputArrays = new Map<string, HostArray>();
  /** Outputs returned as their slot's host array (batch 1, a computed value named by one output). */
  private readonly aliasedOutputs = new Map<string, Slot>();
  /** `HostValues.derived`'s records, by slot and by what was derived. */
  private readonly derivedRecords = new Map<Slot, Map<string, DerivedRecord>>();
  private lastProfile: RunProfile | undefined;
  /**
   * Each kernel step's shortest run so far (ms), for SMALL_SIM_KERNEL_MS: the shortest, because a
   * run on the device thread is timed until the JS thread sees it end, which can be later.
   */
  private readonly kernelRunMs = new Map<Step, number>();
  /** The sequence of the batch being run (graph inputs hold one value per sequence). */
  private sequence = 0;
  private runs = 0;
  private running = false;
  private disposed = false;

  constructor(
    private readonly device: Device,
    readonly plan: Plan,
    options?: LoadOptions,
  ) {
    checkPlan(plan);
    if (plan.chip !== device.chip) {
      throw new PlanError(
        `the plan was partitioned for ${plan.chip} and this device applies ${device.chip}'s rules; partition the graph with { chip: device.chip }`,
      );
    }
    const checked = checkOptions(options, plan);
    this.batch = checked.batch;
    this.sumOverBatch = checked.sumOverBatch;
    this.programCount = plan.programs.length;
    try {
      // Compile every distinct program before allocating anything: a compile error or a spent
      // budget fails the load early. Further kernels of a program are cache hits (no compile).
      for (const program of plan.programs)
        this.kernels[program.instances[0]!] = device.compile(program.program);
      plan.kernels.forEach((instance, index) => {
        this.kernels[index] ??= device.compile(plan.programs[instance.program]!.program);
      });
      this.buildSlots();
      this.buildSteps();
    } catch (error) {
      this.dispose();
      throw error;
    }
  }

  /** The values the caller supplies (graph inputs and trainable weights), with the lengths they take. */
  get sources(): readonly PlanSource[] {
    return [...this.slots.values()]
      .filter((s) => s.role === 'input' || s.role === 'param')
      .map((s) => ({
        name: s.name,
        role: s.role as 'input' | 'param',
        dtype: s.tensor.dtype,
        shape: s.tensor.shape,
        length: s.role === 'input' ? s.size * this.batch : s.size,
      }));
  }

  /** The graph's output names. */
  get outputNames(): readonly string[] {
    return this.plan.outputs.map((o) => o.name);
  }

  /** The profile of the last completed run (undefined before the first). */
  get profile(): RunProfile | undefined {
    return this.lastProfile;
  }

  /** Runs the plan off the JS thread where the device and host kernels allow, overlapping device and host steps. */
  async run(feeds?: PlanFeeds, options?: PlanRunOptions): Promise<PlanOutputs> {
    const copy = this.beginRun(feeds, options);
    const recorder = new ProfileRecorder();
    try {
      for (let sequence = 0; sequence < this.batch; sequence++) {
        this.selectSequence(sequence);
        await this.runSequence(sequence, recorder);
        this.collectOutputs(sequence);
      }
    } finally {
      this.running = false;
    }
    return this.finishRun(recorder, copy);
  }

  /** Runs the plan's steps in order on the calling thread. */
  runSync(feeds?: PlanFeeds, options?: PlanRunOptions): PlanOutputs {
    const copy = this.beginRun(feeds, options);
    const recorder = new ProfileRecorder();
    try {
      for (let sequence = 0; sequence < this.batch; sequence++) {
        this.selectSequence(sequence);
        for (const step of this.steps) this.runStepSync(step, sequence, recorder);
        this.collectOutputs(sequence);
      }
    } finally {
      this.running = false;
    }
    return this.finishRun(recorder, copy);
  }

  /**
   * Replaces one source's values in place (a weight after an optimizer step); every other value
   * stays. Takes what a feed takes: `length` values of `sources`.
   */
  write(name: string, values: PlanFeed): void {
    this.assertUsable();
    const slot = this.sourceSlot(name);
    this.checkFeed(slot, values);
    this.store(slot, values);
  }

  /**
   * Shares `array` with the executable instead of copying it, run after run:
   * - a weight: the executable keeps its values in `array` from now on (they are its value now).
   *   After changing them, `write(name, array)` (or any view of the same memory) copies nothing:
   *   it marks the weight changed, so it is restaged. Change it only between runs.
   * - with batch 1, an output computed in the plan: each run computes it into `array`.
   * `array` is a Float32Array of the value's length; over a SharedArrayBuffer the native host
   * kernels work on it in place (a plain one is copied in and out of their asynchronous calls).
   */
  bind(name: string, array: Float32Array): void {
    this.assertUsable();
    const output = this.aliasedOutputs.get(name);
    const slot = output ?? this.slots.get(name);
    if (slot === undefined || (output === undefined && slot.role !== 'param')) {
      const names = [...this.slots.values()].filter((s) => s.role === 'param').map((s) => s.name);
      throw new PlanError(
        `bind takes a weight or, with batch 1, an output the plan computes; '${name}' is neither${didYouMean(name, [...names, ...this.aliasedOutputs.keys()])}`,
      );
    }
    // The kernels' own check: a Float32Array whose memory stays put (no resizable ArrayBuffer).
    checkTypedArray(`bind '${name}'`, 'the array', array, 'Float32Array');
    if (array.length !== slot.size) {
      throw new PlanFeedError(
        `bind '${name}': expected a Float32Array of ${slot.size} values (${slot.tensor.dtype}[${slot.tensor.shape.join(', ')}]), got ${array.length} values`,
        name,
      );
    }
    if (output === undefined) {
      if (!isFloatDtype(slot.tensor.dtype)) {
        throw new PlanFeedError(`bind '${name}': only floating-point weights can be shared`, name);
      }
      slot.host = array;
      slot.current = array;
      slot.version++;
      return;
    }
    slot.host = array;
    slot.current = array;
    slot.hostVersion = -1; // a device value is decoded into it at the next read
    this.derivedRecords.delete(slot);
  }

  /**
   * A copy of any value the plan computes or takes, by the name the plan gives it (a graph
   * output's name, a node's name: `exe.sources`, the plan report). With a batch, values computed
   * inside the plan are those of the last sequence; graph outputs and inputs hold every sequence.
   */
  read(name: string): HostArray {
    this.assertUsable();
    const output = this.outputArrays.get(name);
    if (output !== undefined && this.runs > 0) return output.slice();
    const slot = this.slots.get(name);
    if (slot === undefined || slot.role === 'constant') {
      const names = [...this.slots.values()].filter((s) => s.role !== 'constant').map((s) => s.name);
      throw new PlanError(
        `the plan has no value named '${name}'${didYouMean(name, names)}; values inside a kernel are not kept, only those passed between steps: ${names.slice(0, 12).join(', ')}${names.length > 12 ? ', …' : ''}`,
      );
    }
    if (slot.role === 'computed') {
      if (slot.version === 0) throw new PlanError(`'${name}' has not been computed yet: run the plan first`);
      return this.hostArrayOf(slot).slice();
    }
    if (slot.version === 0)
      throw new PlanError(`source '${name}' has no value yet: feed it or write it first`);
    return slot.host!.slice();
  }

  /** What the executable runs where: programs, kernel runs, each host op's kernels (and why a slow one is slow), the batch. */
  report(): string {
    const lines = [
      `Plan executable on the ${this.device.backend} device (${this.device.chip}): ${count(this.programCount, 'program')} compiled once; ${count(this.plan.kernels.length, 'kernel run')} and ${count(this.plan.hostOps.length, 'host op')} per sequence.`,
      this.batch === 1
        ? 'Batch: 1 sequence per run.'
        : `Batch: ${this.batch} sequences per run; the IR has no batch axis, so every step runs once per sequence on the same programs (no recompile); inputs and outputs are sequence-major${this.sumOverBatch.size > 0 ? `; summed over the batch: ${[...this.sumOverBatch].join(', ')}` : ''}.`,
    ];
    for (const step of this.steps) {
      if (step.kind === 'kernel') lines.push(`  ane  ${step.label}`);
      else if (step.slowBecause === undefined)
        lines.push(
          `  host ${step.label}: host kernel ${step.bound.kernels.join(', ')} (${hostKernels.active.implementation})`,
        );
      else lines.push(`  host ${step.label}: SLOW generic float32 evaluator (${step.slowBecause})`);
    }
    if (this.lastProfile !== undefined) lines.push('Last run:', formatProfile(this.lastProfile));
    return lines.join('\n');
  }

  /** Host ops that run on the generic (slow) evaluator, with the reason. */
  get slowHostOps(): readonly { name: string; kind: string; reason: string }[] {
    return this.steps.flatMap((s) =>
      s.kind === 'host' && s.slowBecause !== undefined
        ? [{ name: s.op.name, kind: s.op.kind, reason: s.slowBecause }]
        : [],
    );
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.derivedRecords.clear();
    for (const kernel of this.kernels) kernel?.dispose();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  get isDisposed(): boolean {
    return this.disposed;
  }

  // ---- building ------------------------------------------------------------------------------

  private travelName(tensor: Tensor): string {
    return this.plan.outputs.find((o) => o.tensor === tensor)?.name ?? tensor.name;
  }

  private addSlot(tensor: Tensor, fields: Partial<Slot> & Pick<Slot, 'role'>): Slot {
    const existing = this.slotOfTensor.get(tensor);
    if (existing !== undefined) return existing;
    const slot: Slot = {
      name: this.travelName(tensor),
      tensor,
      size: tensor.size,
      host: undefined,
      current: undefined,
      version: 0,
      hostVersion: 0,
      ...fields,
    };
    this.slots.set(slot.name, slot);
    this.slotOfTensor.set(tensor, slot);
    return slot;
  }

  /** A source, constant or frozen weight read from outside every step. */
  private sourceSlotFor(tensor: Tensor): Slot {
    const op = tensor.op;
    if (op.kind === 'input') return this.addSlot(tensor, { role: 'input' });
    if (op.kind === 'param' && op.trainable) return this.addSlot(tensor, { role: 'param' });
    if (op.kind === 'constant' || op.kind === 'param') {
      const values = allocate(tensor, tensor.size);
      if (op.data !== undefined) values.set(constantNumbers(op.data));
      return this.addSlot(tensor, { role: 'constant', host: values, current: values, version: 1 });
    }
    throw new PlanError(`the plan reads '${tensor.name}' (${tensor.op.kind}) before any step computes it`);
  }

  private buildSlots(): void {
    const { plan } = this;
    plan.kernels.forEach((instance, index) => {
      // Ports are in the program's declaration order (the kernel's buffers' order).
      instance.outputs.forEach((port, portIndex) => {
        const bytes = this.kernels[index]!.outputs[portIndex]!.bytes;
        const elements = portElements(bytes, port.spec.dtype);
        for (const segment of port.segments) {
          const tensor = instance.nodes.find((n) => this.travelName(n) === segment.source);
          if (tensor === undefined)
            throw new PlanError(
              `kernel '${instance.name}' returns '${segment.source}', which none of its nodes computes`,
            );
          this.addSlot(tensor, {
            role: 'computed',
            producer: { kind: 'kernel', index },
            device: { kernel: index, port: elements, place: segmentPlacement(port, segment) },
          });
        }
      });
    });
    plan.hostOps.forEach((op, index) => {
      for (const tensor of op.outputs)
        this.addSlot(tensor, { role: 'computed', producer: { kind: 'host', index } });
    });
    // Sources, constants and frozen weights: whatever a step reads that no step computes.
    for (const op of plan.hostOps)
      for (const tensor of op.inputs) if (!this.slotOfTensor.has(tensor)) this.sourceSlotFor(tensor);
    for (const instance of plan.kernels) {
      const reads = new Map<string, Tensor>();
      for (const node of instance.nodes)
        for (const input of node.inputs) reads.set(this.travelName(input), input);
      for (const port of instance.inputs) {
        for (const segment of port.segments) {
          if (this.slots.has(segment.source)) continue;
          const tensor = reads.get(segment.source);
          if (tensor === undefined)
            throw new PlanError(
              `kernel '${instance.name}' stages '${segment.source}', which none of its nodes reads`,
            );
          this.sourceSlotFor(tensor);
        }
      }
    }
    for (const output of plan.outputs) {
      if (!this.slotOfTensor.has(output.tensor)) this.sourceSlotFor(output.tensor);
    }
    for (const slot of this.slots.values()) {
      if (slot.role === 'input' || slot.role === 'param') {
        slot.host = allocate(slot.tensor, slot.role === 'input' ? slot.size * this.batch : slot.size);
        slot.current = slot.role === 'input' ? slot.host.subarray(0, slot.size) : slot.host;
        const op = slot.tensor.op;
        if (op.kind === 'param' && op.data !== undefined) {
          slot.host.set(constantNumbers(op.data));
          slot.version = 1;
        }
      }
    }
    for (const output of plan.outputs) {
      const slot = this.slotOfTensor.get(output.tensor)!;
      const named = plan.outputs.filter((o) => o.tensor === output.tensor).length;
      if (this.batch === 1 && slot.role === 'computed' && named === 1) {
        // One sequence: the output is the value's own host array (a 98 MB gradient set is not
        // copied per run); like the output arrays, it is overwritten by the next run.
        this.aliasedOutputs.set(output.name, slot);
        continue;
      }
      const size = output.tensor.size * (this.sumOverBatch.has(output.name) ? 1 : this.batch);
      this.outputArrays.set(output.name, allocate(output.tensor, size));
    }
  }

  private buildSteps(): void {
    const { plan } = this;
    const stepIndex = (step: PlanStep) =>
      plan.steps.findIndex((s) => s.kind === step.kind && s.index === step.index);
    const dependencies = (slots: readonly Slot[]) => [
      ...new Set(slots.flatMap((s) => (s.producer === undefined ? [] : [stepIndex(s.producer)]))),
    ];
    for (const planStep of plan.steps) {
      if (planStep.kind === 'kernel') {
        const instance = plan.kernels[planStep.index]!;
        const kernel = this.kernels[planStep.index]!;
        const inputs: StagedSegment[] = [];
        for (const [portIndex, port] of instance.inputs.entries()) {
          const elements = portElements(kernel.inputs[portIndex]!.bytes, port.spec.dtype);
          for (const segment of port.segments) {
            inputs.push({
              slot: this.slots.get(segment.source)!,
              port: elements,
              place: segmentPlacement(port, segment),
              stagedVersion: -1,
            });
          }
        }
        const program = `P${instance.program}`;
        this.steps.push({
          kind: 'kernel',
          label: `${instance.name} (${program})`,
          program,
          kernel,
          inputs,
          produces: [...this.slots.values()].filter((s) => s.device?.kernel === planStep.index),
          dependsOn: dependencies(inputs.map((i) => i.slot)),
        });
      } else {
        const op = plan.hostOps[planStep.index]!;
        const reads = op.inputs.map((t) => this.slotOfTensor.get(t)!);
        const { bound, slowBecause } = bindHostOp(op);
        this.steps.push({
          kind: 'host',
          label: `${op.kind} '${op.name}'`,
          op,
          bound,
          ...(slowBecause !== undefined ? { slowBecause } : {}),
          reads,
          readsHalf: new Set((bound.readsHalf ?? []).map((t) => this.slotOfTensor.get(t)!)),
          produces: op.outputs.map((t) => this.slotOfTensor.get(t)!),
          dependsOn: dependencies(reads),
        });
      }
    }
  }

  // ---- running -------------------------------------------------------------------------------

  private slotFor(tensor: Tensor): Slot {
    const slot = this.slotOfTensor.get(tensor);
    if (slot === undefined) throw new PlanError(`internal: no slot for '${tensor.name}'`);
    return slot;
  }

  /**
   * Records per executable, never shared with another executable of the same plan (whose slots
   * have versions of their own). A record names the slot's values by (version, sequence): a step
   * rewriting the slot bumps its version, a feed or write too, and a graph input holds another
   * value in each sequence; other slots hold one sequence's value at a time, so their versions
   * alone tell. Runs do not matter: a value unchanged since an earlier run is still the same.
   */
  private readonly derived: DerivedValues = {
    record: (value, what, array) => {
      const slot = this.slotFor(value);
      const records = this.derivedRecords.get(slot) ?? new Map<string, DerivedRecord>();
      this.derivedRecords.set(slot, records);
      records.set(what, { array, version: slot.version, sequence: this.sequenceOf(slot) });
    },
    recall: (value, what) => {
      const slot = this.slotFor(value);
      const record = this.derivedRecords.get(slot)?.get(what);
      return record !== undefined &&
        record.version === slot.version &&
        record.sequence === this.sequenceOf(slot)
        ? record.array
        : undefined;
    },
    forget: (value, what) => {
      this.derivedRecords.get(this.slotFor(value))?.delete(what);
    },
  };

  private readonly hostValues: HostValues = {
    array: (tensor) => this.hostArrayOf(this.slotFor(tensor)),
    half: (tensor) => this.halfOf(this.slotFor(tensor)),
    derived: this.derived,
  };

  /** Which sequence's value a slot holds: its own per sequence for graph inputs, else 0 (shared, or one at a time). */
  private sequenceOf(slot: Slot): number {
    return slot.role === 'input' ? this.sequence : 0;
  }

  /** The slot's values on the host for the current sequence (decoding a device value when stale). */
  private hostArrayOf(slot: Slot): HostArray {
    if (slot.current === undefined) {
      slot.host = allocate(slot.tensor, slot.size);
      slot.current = slot.host;
    }
    if (slot.device !== undefined && slot.hostVersion !== slot.version) {
      unstageValue(slot.device.port, slot.device.place, slot.current as Float32Array);
      slot.hostVersion = slot.version;
    }
    return slot.current;
  }

  /**
   * A computed value's fp16 bits in its kernel's output buffer, when they lie there densely (an
   * fp16 port; a segment not transposed whose rows are back to back). They stay there until that
   * kernel runs again: in the next sequence or run, after every step of this one.
   */
  private halfOf(slot: Slot): Uint16Array | undefined {
    const home = slot.device;
    if (home === undefined || home.port.dtype !== 'fp16' || slot.version === 0) return undefined;
    const { place } = home;
    if (place.transposed || (place.rows > 1 && place.rowStride !== place.cols)) return undefined;
    return home.port.data.subarray(place.offset, place.offset + slot.size);
  }

  private assertUsable(): void {
    if (this.disposed) throw new DeviceError('this plan executable was disposed; load the plan again');
    if (this.running) throw new DeviceError('this plan executable is running; await the run first');
  }

  private beginRun(feeds: PlanFeeds | undefined, options: PlanRunOptions | undefined): boolean {
    this.assertUsable();
    const copy = copyOption(options, (message) => new PlanFeedError(message));
    const given: [Slot, PlanFeed][] = [];
    if (feeds !== undefined) {
      if (feeds === null || typeof feeds !== 'object' || Array.isArray(feeds) || ArrayBuffer.isView(feeds))
        throw new PlanFeedError(
          `feeds must be an object of values by source name ({ ${this.sources
            .map((s) => s.name)
            .slice(0, 4)
            .join(', ')} }), got ${Array.isArray(feeds) ? 'an array' : String(feeds)}`,
        );
      for (const [name, values] of Object.entries(feeds)) {
        const slot = this.sourceSlot(name);
        this.checkFeed(slot, values);
        given.push([slot, values]);
      }
    }
    const fed = new Set(given.map(([slot]) => slot));
    const missing = [...this.slots.values()].filter(
      (s) => (s.role === 'input' || s.role === 'param') && s.version === 0 && !fed.has(s),
    );
    if (missing.length > 0) {
      throw new PlanFeedError(
        `no value for ${missing.map((s) => `'${s.name}' (${s.role} ${s.tensor.dtype}[${s.tensor.shape.join(', ')}])`).join(', ')}: feed ${missing.length === 1 ? 'it' : 'them'} to run or write ${missing.length === 1 ? 'it' : 'them'} first (exe.write)`,
        missing[0]!.name,
      );
    }
    for (const [slot, values] of given) this.store(slot, values);
    this.running = true;
    return copy;
  }

  private finishRun(recorder: ProfileRecorder, copy: boolean): PlanOutputs {
    this.runs++;
    this.lastProfile = recorder.finish();
    const result: PlanOutputs = {};
    for (const { name } of this.plan.outputs) {
      const aliased = this.aliasedOutputs.get(name);
      const array = aliased !== undefined ? this.hostArrayOf(aliased) : this.outputArrays.get(name)!;
      result[name] = copy ? array.slice() : array;
    }
    return result;
  }

  private selectSequence(sequence: number): void {
    this.sequence = sequence;
    for (const slot of this.slots.values()) {
      if (slot.role === 'input')
        slot.current = slot.host!.subarray(sequence * slot.size, (sequence + 1) * slot.size);
    }
  }

  /** Stages a step's inputs; returns the milliseconds it took. */
  private prepare(step: Step): number {
    const started = performance.now();
    if (step.kind === 'kernel') {
      for (const input of step.inputs) this.stage(input);
    } else {
      for (const slot of step.reads) {
        if (slot.device === undefined || (step.readsHalf.has(slot) && this.halfOf(slot) !== undefined))
          continue;
        this.hostArrayOf(slot);
      }
    }
    return performance.now() - started;
  }

  /** Stages, runs and times one step on the calling thread. */
  private runStepSync(step: Step, sequence: number, recorder: ProfileRecorder): void {
    const startMs = recorder.now();
    const stagingMs = this.prepare(step);
    const runStart = recorder.now();
    if (step.kind === 'kernel') {
      step.kernel.runSync();
      this.timedKernel(step, recorder.now() - runStart);
    } else step.bound.run(this.hostValues, 'sync');
    this.complete(step);
    recorder.staged(startMs, runStart);
    recorder.step(this.timing(step, sequence, runStart, recorder.now(), stagingMs, 'sync'));
  }

  private timedKernel(step: KernelStep, ms: number): void {
    this.kernelRunMs.set(step, Math.min(ms, this.kernelRunMs.get(step) ?? Number.POSITIVE_INFINITY));
  }

  /** Stages a kernel's stale weights; returns whether there were any. */
  private stageWeights(step: KernelStep): boolean {
    let staged = false;
    for (const input of step.inputs) {
      if (
        input.slot.role !== 'param' ||
        input.stagedVersion === input.slot.version ||
        input.inBackground !== undefined
      )
        continue;
      this.stage(input);
      staged = true;
    }
    return staged;
  }

  /**
   * On the simulator, starts staging every weight of at least EARLY_STAGING_ELEMENTS values that
   * its kernel's fp16 port does not hold yet as background work; returns the stagings started.
   */
  private stageLargeWeightsInBackground(recorder: ProfileRecorder): Promise<void>[] {
    if (this.device.backend !== 'sim') return [];
    const started: Promise<void>[] = [];
    for (const step of this.steps) {
      if (step.kind !== 'kernel') continue;
      for (const input of step.inputs) {
        const { slot, port } = input;
        if (
          slot.role !== 'param' ||
          port.dtype !== 'fp16' ||
          input.stagedVersion === slot.version ||
          input.inBackground !== undefined ||
          slot.size < EARLY_STAGING_ELEMENTS
        )
          continue;
        const version = slot.version;
        const startMs = recorder.now();
        const staging = stageValueInBackground(
          this.hostArrayOf(slot) as Float32Array,
          port,
          input.place,
        ).then(() => {
          input.stagedVersion = version;
          recorder.stagedInBackground({
            source: slot.name,
            values: slot.size,
            startMs,
            endMs: recorder.now(),
          });
        });
        input.inBackground = staging.finally(() => {
          input.inBackground = undefined;
        });
        started.push(input.inBackground);
      }
    }
    return started;
  }

  private stage(input: StagedSegment): void {
    const { slot } = input;
    // Weights stay staged until written again; everything else changes every sequence.
    if (slot.role === 'param' && input.stagedVersion === slot.version) return;
    if (
      slot.device === undefined ||
      !copyDeviceValue(slot.device.port, slot.device.place, input.port, input.place)
    ) {
      stageValue(this.hostArrayOf(slot) as Float32Array, input.port, input.place);
    }
    input.stagedVersion = slot.version;
  }

  private complete(step: Step): void {
    for (const slot of step.produces) {
      slot.version++;
      if (step.kind === 'host') slot.hostVersion = slot.version;
    }
  }

  private timing(
    step: Step,
    sequence: number,
    startMs: number,
    endMs: number,
    stagingMs: number,
    hostMode: HostRunMode,
  ) {
    return {
      label: step.label,
      kind: step.kind,
      sequence,
      startMs,
      endMs,
      stagingMs,
      ...(step.kind === 'kernel'
        ? { program: step.program, onJsThread: hostMode === 'sync' }
        : { hostKind: step.op.kind, kernels: step.bound.kernels, hostMode }),
    };
  }

  /**
   * Runs one sequence's steps as their dependencies allow: the device runs one kernel at a time,
   * the host one host op at a time (or up to WEIGHT_GRADS_IN_FLIGHT weight gradients; on the
   * simulator those run as background work, beside the other host ops), the two concurrently.
   * Host ops run on the native kernels' async entry points (off the JS thread), so they proceed
   * while a kernel runs.
   */
  private runSequence(sequence: number, recorder: ProfileRecorder): Promise<void> {
    const { steps } = this;
    const state = steps.map(() => 'waiting' as 'waiting' | 'running' | 'done');
    const hostOrder = steps.flatMap((step, i) => (step.kind === 'host' ? [i] : []));
    const kernelOrder = steps.flatMap((step, i) => (step.kind === 'kernel' ? [i] : []));
    const small = steps.map(
      (step) =>
        step.kind === 'host' &&
        step.produces.reduce((sum, slot) => sum + slot.size, 0) <= SMALL_HOST_OP_ELEMENTS,
    );
    const weightGrad = steps.map((step) => step.kind === 'host' && step.op.kind === 'weight_grad');
    // The simulated device is CPU work on the same cores, and the next kernel waits for it, never for
    // a weight gradient: those run as background work (one thread each, off the pool), so they
    // never take the pool from the kernels nor run on it cut in halves.
    const hostMode = (i: number): HostRunMode =>
      weightGrad[i]! && this.device.backend === 'sim' ? 'background' : 'async';
    // Host ops first: a kernel's staging runs on this thread before its run yields, and a host op
    // launched before it (a dW GEMM on the kernels' threads) runs during that staging. Background
    // work goes last, after the kernel's staging: it would only slow that staging (on the pool,
    // on the critical path) down. Paired through Trainer (stories15M, steps alternating): 0.95-0.98
    // of the step time at batch 1, 0.98-0.99 at batch 4.
    const background = hostOrder.filter((i) => hostMode(i) === 'background');
    const launchOrder = [
      ...hostOrder.filter((i) => hostMode(i) !== 'background'),
      ...kernelOrder,
      ...background,
    ];
    const smallSimKernel = (step: Step) =>
      step.kind === 'kernel' &&
      this.device.backend === 'sim' &&
      (this.kernelRunMs.get(step) ?? Number.POSITIVE_INFINITY) <= SMALL_SIM_KERNEL_MS;
    let kernelBusy = false;
    // Host ops in flight, whether all of them are weight gradients, and how many run as background
    // work. Background work (the simulator's weight gradients) takes only the CPU time the others
    // leave, so it holds back neither the other host ops nor more background work up to the limit.
    let hostsInFlight = 0;
    let onlyWeightGrads = true;
    let backgroundInFlight = 0;
    const canStart = (i: number) => {
      const step = steps[i]!;
      if (step.kind === 'kernel')
        return !kernelBusy && step.inputs.every((input) => input.inBackground === undefined);
      if (hostMode(i) === 'background') return backgroundInFlight < WEIGHT_GRADS_IN_FLIGHT;
      return (
        hostsInFlight === backgroundInFlight ||
        (onlyWeightGrads && weightGrad[i]! && hostsInFlight < WEIGHT_GRADS_IN_FLIGHT)
      );
    };
    let inFlight = 0;
    let failure: { error: unknown } | undefined;
    let earlyStarted = false;
    return new Promise<void>((resolve, reject) => {
      const settle = () => {
        if (inFlight > 0) return;
        if (failure !== undefined) reject(failure.error);
        else if (state.every((s) => s === 'done')) resolve();
      };
      const ready = (i: number) =>
        state[i] === 'waiting' && steps[i]!.dependsOn.every((d) => state[d] === 'done');
      const pump = () => {
        if (failure !== undefined) return settle();
        if (sequence === 0 && !earlyStarted) {
          earlyStarted = true;
          for (const staging of this.stageLargeWeightsInBackground(recorder)) {
            inFlight++;
            staging
              .catch((error: unknown) => {
                failure ??= { error };
              })
              .finally(() => {
                inFlight--;
                pump();
              });
          }
        }
        for (const i of launchOrder) {
          const step = steps[i]!;
          if (!canStart(i) || !ready(i)) continue;
          if (
            (small[i] && hostsInFlight === backgroundInFlight && !kernelBusy && !kernelOrder.some(ready)) ||
            smallSimKernel(step)
          ) {
            // Nothing else is in flight or could start: a small host op (an RMSNorm between two
            // kernels) runs here, without the round trip through a native thread and the event loop;
            // so does a small simulated kernel (SMALL_SIM_KERNEL_MS), the host ops in flight going on.
            try {
              this.runStepSync(step, sequence, recorder);
            } catch (error) {
              failure ??= { error };
            }
            state[i] = 'done';
            return pump();
          }
          state[i] = 'running';
          if (step.kind === 'kernel') kernelBusy = true;
          else {
            hostsInFlight++;
            if (hostMode(i) === 'background') backgroundInFlight++;
            onlyWeightGrads &&= weightGrad[i]!;
          }
          inFlight++;
          const startMs = recorder.now();
          let stagingMs = 0;
          let runStart = startMs;
          const started = (async () => {
            stagingMs = this.prepare(step);
            runStart = recorder.now();
            recorder.staged(startMs, runStart);
            if (step.kind === 'kernel') await step.kernel.run();
            else await step.bound.run(this.hostValues, hostMode(i));
          })();
          started
            .then(
              () => {
                if (step.kind === 'kernel') this.timedKernel(step, recorder.now() - runStart);
                this.complete(step);
                recorder.step(this.timing(step, sequence, runStart, recorder.now(), stagingMs, hostMode(i)));
                state[i] = 'done';
              },
              (error: unknown) => {
                failure ??= { error };
                state[i] = 'done';
              },
            )
            .finally(() => {
              inFlight--;
              if (step.kind === 'kernel') kernelBusy = false;
              else {
                if (hostMode(i) === 'background') backgroundInFlight--;
                if (--hostsInFlight === 0) onlyWeightGrads = true;
              }
              pump();
            });
        }
        if (!kernelBusy) {
          // The device waits on a host op: stage the next kernel's weights meanwhile (they are
          // staged only when rewritten, so its own staging then skips them).
          const next = kernelOrder.find((i) => state[i] === 'waiting');
          if (next !== undefined) {
            const startMs = recorder.now();
            try {
              if (this.stageWeights(steps[next] as KernelStep)) recorder.staged(startMs, recorder.now());
            } catch (error) {
              failure ??= { error }; // the run rejects with it once the steps in flight are done
            }
          }
        }
        settle();
      };
      pump();
    });
  }

  private collectOutputs(sequence: number): void {
    for (const output of this.plan.outputs) {
      const slot = this.slotOfTensor.get(output.tensor)!;
      const target = this.outputArrays.get(output.name);
      if (target === undefined) continue; // aliased: the slot's own array
      const size = output.tensor.size;
      if (this.sumOverBatch.has(output.name)) {
        const values = this.hostArrayOf(slot);
        if (sequence === 0) target.set(values);
        else if (target instanceof Float32Array && values instanceof Float32Array && values.length === size)
          sgdUpdate(target, values, null, SGD_ADD); // target += values, natively (same bits)
        else for (let i = 0; i < size; i++) target[i]! += values[i]!;
        continue;
      }
      const into = target.subarray(sequence * size, (sequence + 1) * size);
      if (slot.device !== undefined && slot.hostVersion !== slot.version) {
        unstageValue(slot.device.port, slot.device.place, into as Float32Array);
      } else {
        into.set(this.hostArrayOf(slot));
      }
    }
  }

  // ---- feeds ---------------------------------------------------------------------------------

  private sourceSlot(name: string): Slot {
    const slot = this.slots.get(name);
    if (slot !== undefined && (slot.role === 'input' || slot.role === 'param')) return slot;
    const names = this.sources.map((s) => s.name);
    const why =
      slot === undefined
        ? 'which the plan does not read'
        : slot.role === 'constant'
          ? 'a constant or frozen weight baked into the plan (rebuild the graph to change it)'
          : 'a value the plan computes (feeds and writes set inputs and trainable weights)';
    throw new PlanFeedError(
      `cannot feed '${name}', ${why}${didYouMean(name, names)}; the sources are ${names.join(', ') || 'none'}`,
      name,
    );
  }

  private checkFeed(slot: Slot, values: unknown): asserts values is PlanFeed {
    const { tensor } = slot;
    const where = `'${slot.name}' (${slot.role} ${tensor.dtype}[${tensor.shape.join(', ')}]${slot.role === 'input' && this.batch > 1 ? ` × batch ${this.batch}` : ''})`;
    const length = slot.role === 'input' ? slot.size * this.batch : slot.size;
    const isNumberArray = Array.isArray(values) && values.every((v) => typeof v === 'number');
    const integer = !isFloatDtype(tensor.dtype);
    const accepted = integer
      ? values instanceof Int32Array ||
        values instanceof Float32Array ||
        values instanceof Float64Array ||
        isNumberArray
      : values instanceof Float32Array ||
        values instanceof Float64Array ||
        (values instanceof Uint16Array && tensor.dtype === 'fp16') ||
        isNumberArray;
    if (!accepted) {
      const what = integer
        ? 'an Int32Array (or numbers) of whole values'
        : tensor.dtype === 'fp16'
          ? 'a Float32Array of values or a Uint16Array of fp16 bit patterns'
          : 'a Float32Array of values';
      const got =
        values === null || typeof values !== 'object'
          ? String(values)
          : Array.isArray(values)
            ? 'an array with non-numbers'
            : `a ${(values as object).constructor?.name ?? 'object'}`;
      throw new PlanFeedError(`${where} takes ${what}, got ${got}`, slot.name);
    }
    const array = values as ArrayLike<number>;
    if (array.length !== length) {
      throw new PlanFeedError(
        `${where} takes ${length} values (row-major${slot.role === 'input' && this.batch > 1 ? ', one sequence after another' : ''}), got ${array.length}`,
        slot.name,
      );
    }
    if (integer && !(values instanceof Int32Array)) {
      for (let i = 0; i < array.length; i++) {
        const v = array[i]!;
        if (!Number.isInteger(v) || v < -2147483648 || v > 2147483647)
          throw new PlanFeedError(`${where}: element ${i} is ${v}, not a whole int32 value`, slot.name);
      }
    }
  }

  private store(slot: Slot, values: PlanFeed): void {
    const host = slot.host as Float32Array;
    if (host.length === 0 && slot.size > 0) {
      // Only an array shared with bind can lose its memory: it was transferred (detached).
      throw new PlanFeedError(
        `the array bound to '${slot.name}' was detached (its buffer transferred); bind a new one (exe.bind) or keep the buffer`,
        slot.name,
      );
    }
    if (
      values instanceof Float32Array &&
      values.buffer === host.buffer &&
      values.byteOffset === host.byteOffset &&
      values.length === host.length
    ) {
      slot.version++; // a shared weight written onto itself (bind): changed in place, nothing to copy
      return;
    }
    if (values instanceof Uint16Array) fp16ToFp32(values, host);
    else slot.host!.set(values);
    slot.version++;
  }
}

function count(n: number, noun: string): string {
  return `${n} ${noun}${n === 1 ? '' : 's'}`;
}
