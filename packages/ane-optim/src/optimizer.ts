/**
 * The optimizer base class, shaped like MLX's: a subclass says which state buffers a tensor needs
 * (`stateFields`, allocated by `initSingle`) and how one tensor is updated (`applySingle`); this
 * class does the rest: parameter trees, parameter groups, learning-rate schedules, the flat-arena
 * fast path, and state save/load.
 *
 * Two ways to step, one update rule:
 * - `update(params, grads)` walks two parameter trees and calls `applySingle` per leaf;
 * - `stepArena(arena)` calls the same `applySingle` once per run of neighbouring tensors that share
 *   a parameter group, over views of the arena's big buffers (a handful of calls for a whole model).
 * Both update in place (MLX returns new arrays; here the weights are large and fresh memory costs).
 */
import type { FlatArena } from './arena';
import { describeValue, OptimizerConfigError, OptimizerInputError, OptimizerStateError } from './errors';
import {
  checkKernelChoice,
  isShared,
  type KernelCall,
  type KernelChoice,
  kernelSet,
  runKernelCall,
  scaleInPlace,
} from './kernels';
import { checkOptionKeys } from './options';
import type { Schedule } from './schedules';
import type { PoolBuffers, ThreadPool } from './thread-pool';
import { describePath, flattenTree, type ParamTree } from './tree';

/** A fixed learning rate or a schedule (a function of the number of updates applied so far). */
export type LearningRate = number | Schedule;

/** Picks tensors by path: a predicate, a RegExp tested against the path, or a list of paths. */
export type ParamMatcher = ((path: string) => boolean) | RegExp | readonly string[];

/** Hyper-parameters every optimizer has. */
export interface BaseHyperParameters {
  learningRate: LearningRate;
}

/** A parameter group: the tensors `params` picks, with their own values for some hyper-parameters. */
export type ParamGroup<H extends BaseHyperParameters> = { params: ParamMatcher; name?: string } & Partial<H>;

/**
 * The options object of an optimizer with hyper-parameters H: each hyper-parameter (defaults apply
 * to those left out), the kernels, and parameter groups. Any other key is an OptimizerConfigError.
 */
export type OptimizerOptions<H extends BaseHyperParameters> = {
  learningRate?: LearningRate;
  /** Which ane-bridge kernels run the updates (default 'auto': native when loaded). */
  kernels?: KernelChoice;
  groups?: ReadonlyArray<ParamGroup<H>>;
} & Partial<Omit<H, 'learningRate'>>;

/** Hyper-parameters as `applySingle` gets them: the learning rate already read off its schedule. */
export type Resolved<H extends BaseHyperParameters> = Omit<H, 'learningRate'> & { learningRate: number };

/**
 * One tensor's optimizer state: `step` counts the updates this tensor has had (PyTorch's per-tensor
 * `state['step']`; the bias correction of update k uses step k), plus one fp32 buffer per field.
 */
export type TensorState<F extends string> = { step: number } & Partial<Record<F, Float32Array>>;

export type OptimizerName = 'SGD' | 'Adam' | 'AdamW' | 'Lion' | (string & {});

export interface StateTensorEntry {
  name: string;
  length: number;
  /** The tensor's shape, when the optimizer knew it (a FlatArena's layout); compared in full on load. */
  shape?: number[];
  /** Updates this tensor has had. */
  step: number;
}

export interface StateBufferEntry {
  tensor: string;
  field: string;
  /** Element offset of this buffer in `data`. */
  offset: number;
  length: number;
}

/** The JSON half of a saved optimizer state. */
export interface OptimizerStateMeta {
  format: 'ane-optim/optimizer-state';
  version: 1;
  optimizer: OptimizerName;
  /** Updates applied (what schedules are evaluated at). */
  step: number;
  tensors: StateTensorEntry[];
  /** Every state buffer, in the order of `data`: field by field, tensors in order within a field. */
  buffers: StateBufferEntry[];
  /** The hyper-parameters at save time, for the record: loadState does not restore them. */
  hyperParameters: Array<Record<string, unknown>>;
}

/** A saved optimizer state: plain JSON-able metadata plus every buffer, concatenated, bit for bit. */
export interface OptimizerState {
  meta: OptimizerStateMeta;
  data: Float32Array;
}

export interface StepArenaOptions {
  /** Also write the updated weights as fp16 bits here ([arena.size]), in the same pass. */
  fp16Out?: Uint16Array;
  /**
   * Multiplies every gradient by this factor (rounded to fp32) as the update reads it, leaving
   * `arena.grads` as they are: unscaling a loss-scaled gradient and clipping it folded into the
   * update instead of two more passes over the gradients. Each gradient becomes the one rounding
   * `g * gradScale`, what scaling them in place first gives. Default 1. An optimizer of your own
   * (one without a `kernelCall`) gets its gradients scaled in place first.
   */
  gradScale?: number;
  /**
   * Split each update across these threads (for the TypeScript kernels; the native ones have their
   * own threads, see ANE_BRIDGE_THREADS). Needs an arena created with `{ shared: true }`.
   */
  pool?: ThreadPool;
}

export const OPTIMIZER_STATE_VERSION = 1;

interface ResolvedGroup<H extends BaseHyperParameters> {
  name: string;
  matches: ((path: string) => boolean) | null;
  hyper: H;
  /** The group sets its own learning rate (so replacing the default's leaves it alone). */
  ownLearningRate: boolean;
}

interface Segment {
  group: number;
  step: number;
  start: number;
  end: number;
  names: string[];
}

function toPredicate(matcher: ParamMatcher, optimizer: string, option: string): (path: string) => boolean {
  if (typeof matcher === 'function') return matcher;
  if (matcher instanceof RegExp) {
    return (path) => {
      matcher.lastIndex = 0;
      return matcher.test(path);
    };
  }
  if (Array.isArray(matcher)) {
    const names = new Set(matcher as readonly string[]);
    return (path) => names.has(path);
  }
  throw new OptimizerConfigError(
    `${optimizer}: ${option} must be a function (path) => boolean, a RegExp or an array of paths, got ${describeValue(matcher)}`,
    option,
  );
}

export abstract class Optimizer<H extends BaseHyperParameters, F extends string> {
  /** Saved with the state; a state is loaded only into an optimizer of the same name. */
  readonly name: OptimizerName;
  /** Per-tensor state, by path (arena tensors: views of the arena's fields). */
  readonly state = new Map<string, TensorState<F>>();
  /** Element count of each tensor that has state (checked against parameters and saved states). */
  private readonly lengths = new Map<string, number>();
  /** Shape of each tensor whose shape is known (from a FlatArena or a loaded state). */
  private readonly shapes = new Map<string, readonly number[]>();
  /**
   * The tensor names of a state just loaded: the next init, update or arena step must name exactly
   * these (a different tree would otherwise silently start afresh).
   */
  private loadedNames: ReadonlySet<string> | null = null;
  private readonly groups: Array<ResolvedGroup<H>>;
  private stepCount = 0;
  private arena: FlatArena | null = null;
  private readonly groupCache = new Map<string, number>();

  /** Which ane-bridge kernels run the updates ('auto', 'native' or 'ts'). */
  readonly kernels: KernelChoice;

  /**
   * @param options the options object the user gave, when there is one: a key that is neither a
   *   hyper-parameter (a key of `defaults`) nor 'kernels' or 'groups' is an OptimizerConfigError
   *   with a did-you-mean (PyTorch's `lr`, `weight_decay`).
   */
  protected constructor(
    name: OptimizerName,
    defaults: H,
    groups: ReadonlyArray<ParamGroup<H>> = [],
    kernels: KernelChoice = 'auto',
    options?: object,
  ) {
    checkOptionKeys(name, options, [...Object.keys(defaults), 'kernels', 'groups']);
    this.name = name;
    this.kernels = checkKernelChoice(kernels, name);
    if (!Array.isArray(groups)) {
      throw new OptimizerConfigError(
        `${name}: groups must be an array, got ${describeValue(groups)}`,
        'groups',
      );
    }
    this.groups = groups.map((group, index) => {
      const option = `groups[${index}]`;
      if (typeof group !== 'object' || group === null) {
        throw new OptimizerConfigError(
          `${name}: ${option} must be an object, got ${describeValue(group)}`,
          option,
        );
      }
      checkOptionKeys(name, group, ['params', 'name', ...Object.keys(defaults)], `${option}.`);
      const { params, name: groupName, ...overrides } = group;
      const hyper = { ...defaults } as H;
      for (const [key, value] of Object.entries(overrides)) {
        if (value !== undefined) (hyper as Record<string, unknown>)[key] = value;
      }
      return {
        name: groupName ?? option,
        matches: toPredicate(params, name, `${option}.params`),
        hyper,
        ownLearningRate: overrides.learningRate !== undefined,
      };
    });
    this.groups.push({ name: 'default', matches: null, hyper: { ...defaults }, ownLearningRate: true });
    this.groups.forEach((group, index) => {
      const where = index === this.groups.length - 1 ? '' : `groups[${index}].`;
      this.checkHyperParameters(group.hyper, where);
    });
  }

  /**
   * Throws OptimizerConfigError when a hyper-parameter is out of range. `where` prefixes option
   * names ('' for the defaults, 'groups[1].' for a group).
   */
  protected checkHyperParameters(hyper: H, where: string): void {
    checkLearningRate(hyper.learningRate, `${where}learningRate`, this.name);
  }

  /** The state buffers a tensor in a group with these hyper-parameters needs. */
  protected abstract stateFields(hyper: H): readonly F[];

  /**
   * State buffers whose values can never be negative (Adam's second moment `v`): a loaded state
   * with a negative value there is refused, as one with a NaN or infinity anywhere is.
   */
  protected nonNegativeFields(): readonly string[] {
    return [];
  }

  /** A fresh state for `param` (MLX init_single): step 0 and zeroed buffers. */
  initSingle(param: Float32Array, hyper: H): TensorState<F> {
    const state = { step: 0 } as TensorState<F>;
    for (const field of this.stateFields(hyper)) {
      (state as Record<string, unknown>)[field] = new Float32Array(param.length);
    }
    return state;
  }

  /**
   * Updates `param` (and `state`'s buffers) in place from `grad` (MLX apply_single). `state.step`
   * is the number of updates this tensor has had before this one; the caller increments it.
   * `fp16Out`, when given, receives the new weights as fp16 bits. The built-in optimizers run the
   * ane-bridge kernel their `kernelCall` names; an optimizer of your own overrides this instead.
   */
  applySingle(
    grad: Float32Array,
    param: Float32Array,
    state: TensorState<F>,
    hyper: Resolved<H>,
    fp16Out?: Uint16Array,
  ): void {
    const call = this.kernelCall(state, hyper);
    if (call === null) {
      throw new OptimizerConfigError(
        `${this.name}: an Optimizer subclass must override applySingle (or kernelCall to use an ane-bridge kernel)`,
        'applySingle',
      );
    }
    const shared = isShared(param) || isShared(grad) || isShared(fp16Out);
    runKernelCall(
      kernelSet(this.kernels, shared),
      call,
      grad,
      param,
      (field) => state[field as F] as Float32Array,
      fp16Out,
    );
  }

  /**
   * The ane-bridge kernel that performs this update, with its options (null when applySingle does
   * the work itself). A pooled stepArena runs it over ranges on several threads.
   */
  protected kernelCall(_state: TensorState<F>, _hyper: Resolved<H>): KernelCall<F> | null {
    return null;
  }

  /** Updates applied so far (each `update` or `stepArena` call is one). */
  get step(): number {
    return this.stepCount;
  }

  /** The default group's learning rate for the next update. */
  get learningRate(): number {
    return this.learningRateOf(this.groups.length - 1, this.stepCount);
  }

  /** Replaces the default group's learning rate or schedule (groups that set their own keep it). */
  set learningRate(value: LearningRate) {
    checkLearningRate(value, 'learningRate', this.name);
    this.groups.forEach((group, index) => {
      if (!group.ownLearningRate || index === this.groups.length - 1) group.hyper.learningRate = value;
    });
  }

  /** The hyper-parameters of the group tensor `path` belongs to (first matching group, else the defaults). */
  hyperParametersOf(path: string): Readonly<H> {
    return (this.groups[this.groupOf(path)] as ResolvedGroup<H>).hyper;
  }

  /** Name of the group tensor `path` belongs to ('default' when no group picks it). */
  groupNameOf(path: string): string {
    return (this.groups[this.groupOf(path)] as ResolvedGroup<H>).name;
  }

  private groupOf(path: string): number {
    let index = this.groupCache.get(path);
    if (index === undefined) {
      index = this.groups.findIndex((g) => g.matches === null || g.matches(path));
      this.groupCache.set(path, index);
    }
    return index;
  }

  private learningRateOf(group: number, step: number): number {
    const lr = (this.groups[group] as ResolvedGroup<H>).hyper.learningRate;
    const value = typeof lr === 'function' ? lr(step) : lr;
    if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
      const where = group === this.groups.length - 1 ? '' : `groups[${group}].`;
      throw new OptimizerConfigError(
        `${this.name}: the learning rate${typeof lr === 'function' ? ` schedule returned ${describeValue(value)} at step ${step}` : ` is ${describeValue(value)}`}; it must be a finite number >= 0`,
        `${where}learningRate`,
      );
    }
    return value;
  }

  private resolvedHyper(group: number, cache: Map<number, Resolved<H>>): Resolved<H> {
    let resolved = cache.get(group);
    if (resolved === undefined) {
      const hyper = (this.groups[group] as ResolvedGroup<H>).hyper;
      resolved = { ...hyper, learningRate: this.learningRateOf(group, this.stepCount) };
      cache.set(group, resolved);
    }
    return resolved;
  }

  /**
   * Creates the state of every leaf of `params` (MLX init), or binds the optimizer to a flat arena
   * (its state buffers become fields of the arena). Optional: update and stepArena do it on first
   * use, but after init a loadState is checked against the real shapes at once.
   */
  init(params: ParamTree | FlatArena): void {
    if (isArena(params)) {
      this.bindArena(params);
      return;
    }
    const leaves = flattenTree(params, `${this.name}.init`);
    this.checkLoadedNames(
      leaves.map(([path]) => path),
      `${this.name}.init`,
    );
    for (const [path, param] of leaves) this.checkExistingState(path, param.length);
    for (const [path, param] of leaves) {
      if (!this.state.has(path)) this.createState(path, param);
    }
  }

  /**
   * One optimizer step over two trees of the same structure: every leaf of `grads` updates the leaf
   * of `params` at the same path, in place. A parameter with no gradient in `grads` is left alone
   * and its step does not advance (as PyTorch does for `grad is None`). Everything is checked before
   * anything changes.
   */
  update(params: ParamTree, grads: ParamTree): void {
    const paramLeaves = new Map(flattenTree(params, `${this.name}.update params`));
    const gradLeaves = flattenTree(grads, `${this.name}.update grads`);
    this.checkLoadedNames([...paramLeaves.keys()], `${this.name}.update`);
    const work: Array<[string, Float32Array, Float32Array]> = [];
    for (const [path, grad] of gradLeaves) {
      const param = paramLeaves.get(path);
      if (param === undefined) {
        throw new OptimizerInputError(
          `${this.name}.update: grads has ${describePath(path)} but params has no tensor there; pass trees of the same structure`,
          path,
        );
      }
      if (grad.length !== param.length) {
        throw new OptimizerInputError(
          `${this.name}.update: ${describePath(path)} has ${param.length} parameters but ${grad.length} gradients`,
          path,
        );
      }
      this.checkExistingState(path, param.length);
      work.push([path, param, grad]);
    }
    const hyperCache = new Map<number, Resolved<H>>();
    const plan = work.map(([path, param, grad]) => {
      const group = this.groupOf(path);
      return { path, param, grad, hyper: this.resolvedHyper(group, hyperCache), group };
    });
    for (const { path, param, grad, hyper, group } of plan) {
      const state = this.state.get(path) ?? this.createState(path, param, group);
      this.applySingle(grad, param, state, hyper);
      state.step += 1;
    }
    this.stepCount += 1;
    this.loadedNames = null;
  }

  /**
   * One optimizer step over a flat arena: `arena.params` from `arena.grads`, with the state buffers
   * as fields of the arena ('m', 'v', 'momentum'). One kernel call per run of neighbouring tensors
   * that share a group and a step count (lay tensors out by group for the fewest calls).
   */
  stepArena(arena: FlatArena, options: StepArenaOptions = {}): void {
    checkOptionKeys(`${this.name}.stepArena`, options, ['fp16Out', 'pool', 'gradScale']);
    const { fp16Out, pool, gradScale = 1 } = options;
    if (typeof gradScale !== 'number' || !Number.isFinite(Math.fround(gradScale))) {
      throw new OptimizerConfigError(
        `${this.name}.stepArena: gradScale must be a finite number within fp32's range (it is rounded to fp32), got ${describeValue(gradScale)}`,
        'gradScale',
      );
    }
    const scaled = Math.fround(gradScale) !== 1;
    // A subclass that overrides applySingle keeps it: its gradients are scaled in place first.
    const ownUpdate = this.applySingle !== Optimizer.prototype.applySingle;
    if (fp16Out !== undefined && (!(fp16Out instanceof Uint16Array) || fp16Out.length !== arena.size)) {
      throw new OptimizerInputError(
        `${this.name}.stepArena: fp16Out must be a Uint16Array of arena.size (${arena.size}) elements, got ${describeValue(fp16Out)}`,
      );
    }
    if (pool !== undefined) pool.checkUsable(arena, fp16Out, `${this.name}.stepArena`);
    this.bindArena(arena);
    const segments = this.arenaSegments(arena);
    const hyperCache = new Map<number, Resolved<H>>();
    const resolved = segments.map((segment) => this.resolvedHyper(segment.group, hyperCache));
    const poolBuffers = pool === undefined ? null : this.poolBuffers(arena, fp16Out);
    const kernels = kernelSet(this.kernels, arena.shared || isShared(fp16Out));
    segments.forEach((segment, index) => {
      const { start, end } = segment;
      const state = { step: segment.step } as TensorState<F>;
      for (const field of this.stateFields((this.groups[segment.group] as ResolvedGroup<H>).hyper)) {
        (state as Record<string, unknown>)[field] = arena.field(field).subarray(start, end);
      }
      const hyper = resolved[index] as Resolved<H>;
      const grads = arena.grads.subarray(start, end);
      const params = arena.params.subarray(start, end);
      const out = fp16Out?.subarray(start, end);
      const call = pool !== undefined || scaled ? this.kernelCall(state, hyper) : null;
      if (scaled && (call === null || ownUpdate)) {
        scaleInPlace(grads, gradScale, this.kernels);
        this.applySingle(grads, params, state, hyper, out);
      } else if (call === null || (!scaled && poolBuffers === null)) {
        this.applySingle(grads, params, state, hyper, out);
      } else {
        const folded = scaled
          ? { ...call, options: { ...call.options, gradScale: Math.fround(gradScale) } }
          : call;
        const update = (from: number, to: number) =>
          runKernelCall(
            kernels,
            folded,
            arena.grads.subarray(from, to),
            arena.params.subarray(from, to),
            (field) => arena.field(field).subarray(from, to),
            fp16Out?.subarray(from, to),
          );
        if (pool === undefined || poolBuffers === null) update(start, end);
        else pool.run(kernels.implementation, folded, poolBuffers, start, end, fp16Out !== undefined, update);
      }
      for (const name of segment.names) (this.state.get(name) as TensorState<F>).step += 1;
    });
    this.stepCount += 1;
  }

  private poolBuffers(arena: FlatArena, fp16Out: Uint16Array | undefined): PoolBuffers {
    const buffers: PoolBuffers = {};
    for (const field of arena.fieldNames()) buffers[field] = arena.field(field);
    if (fp16Out !== undefined) buffers.fp16Out = fp16Out;
    return buffers;
  }

  /** The arena this optimizer is bound to, if any. */
  get boundArena(): FlatArena | null {
    return this.arena;
  }

  private createState(path: string, param: Float32Array, group = this.groupOf(path)): TensorState<F> {
    const state = this.initSingle(param, (this.groups[group] as ResolvedGroup<H>).hyper);
    this.state.set(path, state);
    this.lengths.set(path, param.length);
    return state;
  }

  private bindArena(arena: FlatArena): void {
    if (this.arena === arena) return;
    this.checkLoadedNames(
      arena.tensors.map((t) => t.name),
      `${this.name}.stepArena`,
    );
    if (this.arena !== null) {
      throw new OptimizerInputError(
        `${this.name}.stepArena: this optimizer already keeps its state in another FlatArena; use one optimizer per arena`,
      );
    }
    // Every existing state (from update() or loadState()) must belong to a tensor of the arena.
    for (const path of this.state.keys()) {
      if (!arena.has(path)) {
        throw new OptimizerStateError(
          `${this.name}: the optimizer has state for ${describePath(path)}, which the arena does not have; create a new optimizer for this arena or load a state saved from it`,
          { tensor: path },
        );
      }
      this.checkStateFits(path, arena.tensor(path).length, arena.tensor(path).shape);
    }
    for (const tensor of arena.tensors) {
      const existing = this.state.get(tensor.name);
      const view: TensorState<F> = { step: existing?.step ?? 0 } as TensorState<F>;
      for (const field of this.stateFields(this.hyperParametersOf(tensor.name))) {
        const buffer = arena.field(field).subarray(tensor.offset, tensor.offset + tensor.length);
        const old = existing?.[field];
        if (old instanceof Float32Array) buffer.set(old);
        else buffer.fill(0);
        (view as Record<string, unknown>)[field] = buffer;
      }
      this.state.set(tensor.name, view);
      this.lengths.set(tensor.name, tensor.length);
      this.shapes.set(tensor.name, tensor.shape);
    }
    this.arena = arena;
    this.loadedNames = null;
  }

  private arenaSegments(arena: FlatArena): Segment[] {
    const segments: Segment[] = [];
    for (const tensor of arena.tensors) {
      if (tensor.length === 0) continue;
      const group = this.groupOf(tensor.name);
      const step = (this.state.get(tensor.name) as TensorState<F>).step;
      const last = segments[segments.length - 1];
      if (last !== undefined && last.group === group && last.step === step && last.end === tensor.offset) {
        last.end += tensor.length;
        last.names.push(tensor.name);
      } else {
        segments.push({
          group,
          step,
          start: tensor.offset,
          end: tensor.offset + tensor.length,
          names: [tensor.name],
        });
      }
    }
    return segments;
  }

  private checkExistingState(path: string, length: number): void {
    if (this.state.has(path)) this.checkStateFits(path, length);
  }

  private checkStateFits(path: string, length: number, shape?: readonly number[]): void {
    const stateLength = this.lengths.get(path);
    if (stateLength !== undefined && stateLength !== length) {
      throw new OptimizerStateError(
        `${this.name}: the state of ${describePath(path)} is for ${stateLength} elements but the parameter has ${length}; it was saved from (or first used with) a model of another shape`,
        { tensor: path, field: 'length' },
      );
    }
    const stateShape = this.shapes.get(path);
    if (shape !== undefined && stateShape !== undefined && !sameShape(shape, stateShape)) {
      throw new OptimizerStateError(
        `${this.name}: the state of ${describePath(path)} is for shape ${shapeText(stateShape)} but the parameter has shape ${shapeText(shape)} (the same ${length} elements, laid out differently); it was saved from (or first used with) a model of another shape`,
        { tensor: path, field: 'shape' },
      );
    }
  }

  /** After a loadState, the tensors stepped next must be exactly the loaded ones. */
  private checkLoadedNames(names: readonly string[], what: string): void {
    const loaded = this.loadedNames;
    if (loaded === null) return;
    const given = new Set(names);
    const missing = [...loaded].filter((name) => !given.has(name));
    const extra = names.filter((name) => !loaded.has(name));
    if (missing.length === 0 && extra.length === 0) return;
    const list = (items: readonly string[]) =>
      items
        .slice(0, 8)
        .map((name) => `'${name}'`)
        .join(', ') + (items.length > 8 ? ` and ${items.length - 8} more` : '');
    const parts = [
      missing.length > 0 ? `missing ${list(missing)} (in the loaded state, not in these parameters)` : '',
      extra.length > 0 ? `extra ${list(extra)} (in these parameters, not in the loaded state)` : '',
    ].filter((part) => part !== '');
    throw new OptimizerStateError(
      `${what}: the parameters do not match the optimizer state just loaded: ${parts.join('; ')}. Their state would silently start afresh; pass the parameters the state was saved with (same names), or create a new optimizer to start over`,
      { tensor: missing[0] ?? extra[0]!, field: 'names' },
    );
  }

  /**
   * Every buffer and counter, copied: `meta` is plain JSON, `data` the buffers bit for bit (see
   * encodeOptimizerState for one binary blob).
   */
  saveState(): OptimizerState {
    const names = [...this.state.keys()];
    const tensors: StateTensorEntry[] = [];
    const fieldOrder: string[] = [];
    for (const name of names) {
      const state = this.state.get(name) as TensorState<F>;
      for (const field of this.stateFields(this.hyperParametersOf(name))) {
        if (state[field] instanceof Float32Array && !fieldOrder.includes(field)) fieldOrder.push(field);
      }
      const shape = this.shapes.get(name);
      tensors.push({
        name,
        length: this.lengths.get(name) ?? 0,
        step: state.step,
        ...(shape !== undefined ? { shape: [...shape] } : {}),
      });
    }
    const buffers: StateBufferEntry[] = [];
    let offset = 0;
    for (const field of fieldOrder) {
      for (const name of names) {
        const buffer = (this.state.get(name) as Record<string, unknown>)[field];
        if (!(buffer instanceof Float32Array)) continue;
        buffers.push({ tensor: name, field, offset, length: buffer.length });
        offset += buffer.length;
      }
    }
    const data = new Float32Array(offset);
    for (const entry of buffers) {
      data.set(
        (this.state.get(entry.tensor) as Record<string, unknown>)[entry.field] as Float32Array,
        entry.offset,
      );
    }
    return {
      meta: {
        format: 'ane-optim/optimizer-state',
        version: OPTIMIZER_STATE_VERSION,
        optimizer: this.name,
        step: this.stepCount,
        tensors,
        buffers,
        hyperParameters: this.groups.map((group) => describeHyper(group.name, group.hyper)),
      },
      data,
    };
  }

  /**
   * Replaces the whole state (every buffer, every tensor's step, the update count) with a saved
   * one. Checked first, in full: a mismatch throws OptimizerStateError naming the tensor and field,
   * and leaves the optimizer as it was. Tensors the saved state does not mention start afresh.
   */
  loadState(saved: OptimizerState): void {
    const meta = this.checkSavedState(saved);
    const byTensor = new Map<string, Map<string, StateBufferEntry>>();
    for (const entry of meta.buffers) {
      const fields = byTensor.get(entry.tensor) ?? new Map<string, StateBufferEntry>();
      fields.set(entry.field, entry);
      byTensor.set(entry.tensor, fields);
    }
    // Check everything against this optimizer before touching anything.
    for (const tensor of meta.tensors) {
      const fields = byTensor.get(tensor.name) ?? new Map<string, StateBufferEntry>();
      const expected = this.stateFields(this.hyperParametersOf(tensor.name));
      for (const field of expected) {
        if (!fields.has(field)) {
          throw new OptimizerStateError(
            `${this.name}.loadState: the state of '${tensor.name}' has no '${field}' buffer, which its group's hyper-parameters need; was it saved with other settings (e.g. momentum 0)?`,
            { tensor: tensor.name, field },
          );
        }
      }
      for (const field of fields.keys()) {
        if (!(expected as readonly string[]).includes(field)) {
          throw new OptimizerStateError(
            `${this.name}.loadState: the state of '${tensor.name}' has a '${field}' buffer, which ${this.name} with these hyper-parameters does not use (it uses ${expected.length > 0 ? expected.join(', ') : 'none'})`,
            { tensor: tensor.name, field },
          );
        }
      }
      if (this.arena !== null && !this.arena.has(tensor.name)) {
        throw new OptimizerStateError(
          `${this.name}.loadState: the saved state has tensor '${tensor.name}', which the bound arena does not have`,
          { tensor: tensor.name },
        );
      }
      const currentLength = this.lengths.get(tensor.name);
      if (currentLength !== undefined && currentLength !== tensor.length) {
        throw new OptimizerStateError(
          `${this.name}.loadState: '${tensor.name}' has ${currentLength} elements here but ${tensor.length} in the saved state; it was saved from a model of another shape`,
          { tensor: tensor.name, field: 'length' },
        );
      }
      const currentShape = this.shapes.get(tensor.name);
      if (
        currentShape !== undefined &&
        tensor.shape !== undefined &&
        !sameShape(currentShape, tensor.shape)
      ) {
        throw new OptimizerStateError(
          `${this.name}.loadState: '${tensor.name}' has shape ${shapeText(currentShape)} here but ${shapeText(tensor.shape)} in the saved state (the same ${tensor.length} elements, laid out differently); it was saved from a model of another shape`,
          { tensor: tensor.name, field: 'shape' },
        );
      }
      for (const [field, entry] of fields) this.checkStateValues(tensor.name, field, entry, saved.data);
    }
    const savedNames = new Set(meta.tensors.map((t) => t.name));
    if (this.arena !== null) {
      // Every tensor of the bound arena needs its state: none may silently start afresh.
      this.loadedNames = savedNames;
      try {
        this.checkLoadedNames(
          this.arena.tensors.map((t) => t.name),
          `${this.name}.loadState`,
        );
      } finally {
        this.loadedNames = null;
      }
    }
    // Apply.
    for (const tensor of meta.tensors) {
      const fields = byTensor.get(tensor.name) ?? new Map<string, StateBufferEntry>();
      let state = this.state.get(tensor.name);
      if (state === undefined || this.arena === null) {
        state = { step: 0 } as TensorState<F>;
        this.state.set(tensor.name, state);
      }
      state.step = tensor.step;
      this.lengths.set(tensor.name, tensor.length);
      if (tensor.shape !== undefined) this.shapes.set(tensor.name, [...tensor.shape]);
      else if (this.arena === null) this.shapes.delete(tensor.name);
      for (const [field, entry] of fields) {
        const values = saved.data.subarray(entry.offset, entry.offset + entry.length);
        const buffer = (state as Record<string, unknown>)[field];
        if (buffer instanceof Float32Array && this.arena !== null) buffer.set(values);
        else (state as Record<string, unknown>)[field] = values.slice();
      }
    }
    for (const [name, state] of this.state) {
      if (savedNames.has(name)) continue;
      if (this.arena === null) {
        this.state.delete(name);
        this.lengths.delete(name);
        this.shapes.delete(name);
        continue;
      }
      state.step = 0;
      for (const field of this.stateFields(this.hyperParametersOf(name))) state[field]?.fill(0);
    }
    this.stepCount = meta.step;
    // Bound to an arena, the names were checked above; otherwise the next step's tree must match.
    this.loadedNames = this.arena === null ? savedNames : null;
  }

  /** A saved buffer must hold finite numbers (and no negative ones where they are impossible). */
  private checkStateValues(tensor: string, field: string, entry: StateBufferEntry, data: Float32Array): void {
    const nonNegative = this.nonNegativeFields().includes(field);
    const end = entry.offset + entry.length;
    for (let i = entry.offset; i < end; i++) {
      const value = data[i]!;
      if (Number.isFinite(value) && (!nonNegative || value >= 0)) continue;
      throw new OptimizerStateError(
        `${this.name}.loadState: the '${field}' buffer of '${tensor}' holds ${describeValue(value)} at element ${i - entry.offset}; ${nonNegative ? 'it must be finite and >= 0' : 'it must be finite'}, or the first update turns the weights into NaN. The state is corrupt or comes from a run that diverged: load an earlier checkpoint`,
        { tensor, field },
      );
    }
  }

  private checkSavedState(saved: OptimizerState): OptimizerStateMeta {
    const fail = (message: string, field: string): never => {
      throw new OptimizerStateError(`${this.name}.loadState: ${message}`, { field });
    };
    if (typeof saved !== 'object' || saved === null)
      fail(`expected { meta, data }, got ${describeValue(saved)}`, 'meta');
    const { meta, data } = saved;
    if (meta?.format !== 'ane-optim/optimizer-state') {
      fail(
        `expected a state from saveState() (format 'ane-optim/optimizer-state'), got format ${describeValue(meta?.format)}`,
        'format',
      );
    }
    if (meta.version !== OPTIMIZER_STATE_VERSION) {
      fail(
        `state version ${describeValue(meta.version)} is not supported (this ane-optim reads version ${OPTIMIZER_STATE_VERSION}); load it with the ane-optim that saved it`,
        'version',
      );
    }
    if (meta.optimizer !== this.name) {
      fail(
        `the state was saved by ${describeValue(meta.optimizer)}, not ${this.name}; load it into the same kind of optimizer`,
        'optimizer',
      );
    }
    if (!Number.isSafeInteger(meta.step) || meta.step < 0) {
      fail(
        `step must be an integer in [0, 2^53), got ${describeValue(meta.step)}; the state is corrupt`,
        'step',
      );
    }
    if (!(data instanceof Float32Array))
      fail(`data must be a Float32Array, got ${describeValue(data)}`, 'data');
    if (!Array.isArray(meta.tensors) || !Array.isArray(meta.buffers))
      fail('tensors and buffers must be arrays', 'tensors');
    const lengths = new Map<string, number>();
    for (const tensor of meta.tensors) {
      if (typeof tensor?.name !== 'string')
        fail(`a tensor entry has no name: ${JSON.stringify(tensor)}`, 'tensors');
      if (lengths.has(tensor.name)) {
        throw new OptimizerStateError(`${this.name}.loadState: tensor '${tensor.name}' appears twice`, {
          tensor: tensor.name,
        });
      }
      if (
        !Number.isInteger(tensor.length) ||
        tensor.length < 0 ||
        !Number.isSafeInteger(tensor.step) ||
        tensor.step < 0
      ) {
        throw new OptimizerStateError(
          `${this.name}.loadState: tensor '${tensor.name}' has length ${describeValue(tensor.length)} and step ${describeValue(tensor.step)}; both must be integers in [0, 2^53)`,
          { tensor: tensor.name, field: 'step' },
        );
      }
      if (
        tensor.shape !== undefined &&
        (!Array.isArray(tensor.shape) ||
          !tensor.shape.every((d) => Number.isSafeInteger(d) && d >= 0) ||
          tensor.shape.reduce((a, b) => a * b, 1) !== tensor.length)
      ) {
        throw new OptimizerStateError(
          `${this.name}.loadState: tensor '${tensor.name}' has shape ${describeValue(tensor.shape)}, which does not hold its ${tensor.length} elements`,
          { tensor: tensor.name, field: 'shape' },
        );
      }
      lengths.set(tensor.name, tensor.length);
    }
    const seen = new Set<string>();
    for (const entry of meta.buffers) {
      const tensorLength = lengths.get(entry?.tensor);
      const key = `${entry?.tensor}\u0000${entry?.field}`;
      if (tensorLength === undefined) {
        throw new OptimizerStateError(
          `${this.name}.loadState: buffer '${entry?.field}' belongs to tensor ${describeValue(entry?.tensor)}, which the state does not list`,
          { tensor: String(entry?.tensor), field: String(entry?.field) },
        );
      }
      if (seen.has(key)) {
        throw new OptimizerStateError(
          `${this.name}.loadState: buffer '${entry.field}' of '${entry.tensor}' appears twice`,
          { tensor: entry.tensor, field: entry.field },
        );
      }
      seen.add(key);
      if (
        entry.length !== tensorLength ||
        !Number.isInteger(entry.offset) ||
        entry.offset < 0 ||
        entry.offset + entry.length > data.length
      ) {
        throw new OptimizerStateError(
          `${this.name}.loadState: buffer '${entry.field}' of '${entry.tensor}' (offset ${describeValue(entry.offset)}, length ${describeValue(entry.length)}) does not fit: the tensor has ${tensorLength} elements and data has ${data.length}`,
          { tensor: entry.tensor, field: entry.field },
        );
      }
    }
    return meta;
  }
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

function shapeText(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}

function isArena(value: unknown): value is FlatArena {
  return (
    typeof value === 'object' &&
    value !== null &&
    !ArrayBuffer.isView(value) &&
    typeof (value as FlatArena).field === 'function' &&
    Array.isArray((value as FlatArena).tensors)
  );
}

export function checkLearningRate(value: unknown, option: string, optimizer: string): void {
  if (typeof value === 'function') return;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
    throw new OptimizerConfigError(
      `${optimizer}: ${option} must be a finite number >= 0 or a schedule (step) => number, got ${describeValue(value)}`,
      option,
    );
  }
}

function describeHyper(name: string, hyper: BaseHyperParameters): Record<string, unknown> {
  const out: Record<string, unknown> = { group: name };
  for (const [key, value] of Object.entries(hyper))
    out[key] = typeof value === 'function' ? 'schedule' : value;
  return out;
}
