/**
 * Elementwise fusion: runs of planned elementwise steps (binary arithmetic, the native unary ops)
 * over one index space become one fused chain (./ops/fused.ts). The planner's steps are walked in
 * order; an elementwise step joins the open chain when it has the chain's length and reads any
 * value the chain computes element for element (no broadcast of a chain value). A step of another
 * kind that neither reads a chain value nor writes what the chain reads is passed over: it runs
 * before the chain, which it cannot observe. Anything else closes the chain, and the fused step
 * runs where it closed.
 *
 * A chain stores only the values something after it reads (a later step or a returned value), and
 * reads a sliced or transposed operand in place through its view when it reads it whole, so the
 * copy behind the view is pruned when nothing else reads it. Every op computes and rounds as it
 * does alone: the results are the same bits, fused or not (tests/ir-sim compares both).
 */

import type { GemmOperand } from './constants';
import type { RunStep } from './op-planners';
import type { BinaryArithmeticOp, UnaryOp } from './ops/elementwise';
import type { FusedInstruction, FusedOperand } from './ops/fused';
import { prepareChain, runFusedChain } from './ops/fused';
import type { FloatTensor, SimData } from './tensor';

/** What one elementwise step computes, as the planner describes it for fusion. */
export interface ElementwiseRecipe {
  readonly kind: 'binary' | 'unary';
  readonly op: BinaryArithmeticOp | UnaryOp;
  readonly out: FloatTensor;
  /** The operands as the op reads them, with the in-place view the op could read instead. */
  readonly operands: readonly { readonly walk: FusedOperand; readonly view?: FusedOperand }[];
  /** unary log/rsqrt/inverse: added first; 0 otherwise. */
  readonly epsilon: number;
}

/** A planned run step with the buffers it reads and writes (for pruning unread copies). */
export interface PlannedStep {
  readonly run: RunStep;
  readonly reads: ReadonlySet<SimData>;
  readonly writes: readonly SimData[];
  readonly elementwise?: ElementwiseRecipe;
  /** A GEMM step's operands: everything it reads, it reads through them. */
  readonly gemmOperands?: readonly GemmOperand[];
  /**
   * Buffers of `reads` the step reads only in part, with the windows it reads (the others it may
   * read whole): a run decodes only these windows of an fp16 input that nothing else reads.
   */
  readonly readWindows?: ReadonlyMap<SimData, readonly ReadWindow[]>;
}

/** Rows of contiguous elements of a buffer: `rows` runs of `cols` from `offset`, `rowStride` apart. */
export interface ReadWindow {
  readonly offset: number;
  readonly rows: number;
  readonly cols: number;
  readonly rowStride: number;
}

/**
 * `steps` with runs of elementwise steps fused. `results` are the returned buffers; `timed` wraps
 * a fused step's run for the op profile.
 */
export function fuseElementwise(
  steps: readonly PlannedStep[],
  results: readonly SimData[],
  timed: (run: RunStep) => RunStep,
): PlannedStep[] {
  const readers = new Map<SimData, PlannedStep[]>();
  for (const step of steps) {
    for (const data of step.reads) {
      const list = readers.get(data) ?? [];
      list.push(step);
      readers.set(data, list);
    }
  }
  const returned = new Set<SimData>(results);
  const fused: PlannedStep[] = [];
  let members: PlannedStep[] = [];
  let passed: PlannedStep[] = [];
  const chainWrites = new Set<SimData>();
  const chainReads = new Set<SimData>();

  const close = () => {
    if (members.length === 0) return;
    fused.push(...passed, chainStep(members, readers, returned, timed));
    members = [];
    passed = [];
    chainWrites.clear();
    chainReads.clear();
  };
  const join = (step: PlannedStep) => {
    members.push(step);
    chainWrites.add(step.elementwise!.out.data);
    for (const data of step.reads) chainReads.add(data);
  };

  for (const step of steps) {
    const recipe = step.elementwise;
    if (recipe !== undefined) {
      if (members.length > 0 && !joins(recipe, members[0]!.elementwise!.out.data.length, chainWrites))
        close();
      join(step);
    } else if (members.length === 0) {
      fused.push(step);
    } else if (
      [...step.reads].some((data) => chainWrites.has(data)) ||
      step.writes.some((data) => chainWrites.has(data) || chainReads.has(data))
    ) {
      close();
      fused.push(step);
    } else {
      passed.push(step);
    }
  }
  close();
  return fused;
}

/** Whether an elementwise step can join a chain of `length` elements that computes `chainWrites`. */
function joins(recipe: ElementwiseRecipe, length: number, chainWrites: ReadonlySet<SimData>): boolean {
  if (recipe.out.data.length !== length) return false;
  return recipe.operands.every(({ walk }) => !chainWrites.has(walk.data) || readsWhole(walk, length));
}

/** Whether a walk over `length` elements reads its data whole, element i at data[i]. */
export function readsWhole(walk: FusedOperand, length: number): boolean {
  if (walk.stride !== 1 || walk.inner < 1 || walk.data.length !== length) return false;
  for (let row = 0; row * walk.inner < length; row++)
    if (walk.rowOffsets[row] !== row * walk.inner) return false;
  return true;
}

function sameWalk(a: FusedOperand, b: FusedOperand): boolean {
  if (a.data !== b.data || a.inner !== b.inner || a.stride !== b.stride) return false;
  if (a.rowOffsets === b.rowOffsets) return true;
  if (a.rowOffsets.length !== b.rowOffsets.length) return false;
  return a.rowOffsets.every((offset, row) => offset === b.rowOffsets[row]);
}

/** The fused step of a chain (or its one member, when fusing would gain nothing). */
function chainStep(
  members: readonly PlannedStep[],
  readers: ReadonlyMap<SimData, readonly PlannedStep[]>,
  returned: ReadonlySet<SimData>,
  timed: (run: RunStep) => RunStep,
): PlannedStep {
  const inChain = new Set(members);
  const computed = new Set<SimData>(members.map((step) => step.elementwise!.out.data));
  const readAfter = (data: SimData) =>
    returned.has(data) || (readers.get(data) ?? []).some((reader) => !inChain.has(reader));
  // How each operand is read: a chain value from its register, else in place when a view allows.
  const sourceOf = (operand: { walk: FusedOperand; view?: FusedOperand }): FusedOperand =>
    operand.view !== undefined && !computed.has(operand.view.data) ? operand.view : operand.walk;
  const usesView = members.some((step) =>
    step.elementwise!.operands.some((operand) => sourceOf(operand) === operand.view),
  );
  if (members.length === 1 && !usesView) return members[0]!;

  // The last member that reads each value (loaded operands by walk, chain values by buffer).
  const operands: FusedOperand[] = [];
  const operandIndex = (walk: FusedOperand) => {
    const found = operands.findIndex((known) => sameWalk(known, walk));
    if (found >= 0) return found;
    operands.push(walk);
    return operands.length - 1;
  };
  const lastUse = new Map<string, number>();
  const keyOf = (operand: { walk: FusedOperand; view?: FusedOperand }) =>
    computed.has(operand.walk.data)
      ? `value ${members.findIndex((s) => s.elementwise!.out.data === operand.walk.data)}`
      : `operand ${operandIndex(sourceOf(operand))}`;
  members.forEach((step, j) => {
    for (const operand of step.elementwise!.operands) lastUse.set(keyOf(operand), j);
  });

  const code: FusedInstruction[] = [];
  const outputs: Float32Array[] = [];
  const free: number[] = [];
  let registers = 0;
  const allocate = () => free.pop() ?? registers++;
  const held = new Map<string, number>();
  members.forEach((step, j) => {
    const recipe = step.elementwise!;
    const inputs = recipe.operands.map((operand) => {
      const key = keyOf(operand);
      let register = held.get(key);
      if (register === undefined) {
        register = allocate();
        code.push({ kind: 'load', dst: register, operand: operandIndex(sourceOf(operand)) });
        held.set(key, register);
      }
      return register;
    });
    const dst = allocate();
    const fp16 = recipe.out.dtype === 'fp16';
    if (recipe.kind === 'binary') {
      code.push({
        kind: 'binary',
        op: recipe.op as BinaryArithmeticOp,
        dst,
        a: inputs[0]!,
        b: inputs[1]!,
        fp16,
      });
    } else {
      code.push({
        kind: 'unary',
        op: recipe.op as UnaryOp,
        dst,
        a: inputs[0]!,
        epsilon: recipe.epsilon,
        fp16,
      });
    }
    if (readAfter(recipe.out.data)) {
      code.push({ kind: 'store', output: outputs.length, src: dst });
      outputs.push(recipe.out.data);
    }
    const ownKey = `value ${j}`;
    if ((lastUse.get(ownKey) ?? -1) > j) held.set(ownKey, dst);
    else free.push(dst);
    for (const operand of recipe.operands) {
      const key = keyOf(operand);
      const register = held.get(key);
      if (register !== undefined && lastUse.get(key) === j) {
        held.delete(key);
        free.push(register);
      }
    }
  });

  const chain = prepareChain({
    code,
    operands,
    outputs,
    registers,
    length: members[0]!.elementwise!.out.data.length,
  });
  const reads = new Set(operands.map((operand) => operand.data));
  return { run: timed(() => runFusedChain(chain)), reads, ...chainWindows(members, reads), writes: outputs };
}

/** The windows a chain reads of each buffer, when its members read that buffer only in windows. */
function chainWindows(
  members: readonly PlannedStep[],
  reads: ReadonlySet<SimData>,
): { readWindows?: ReadonlyMap<SimData, readonly ReadWindow[]> } {
  const readWindows = new Map<SimData, readonly ReadWindow[]>();
  for (const data of reads) {
    const lists = members.map(
      (step) => step.readWindows?.get(data) ?? (step.reads.has(data) ? undefined : []),
    );
    if (lists.every((list) => list !== undefined) && lists.some((list) => list.length > 0))
      readWindows.set(data, lists.flat());
  }
  return readWindows.size === 0 ? {} : { readWindows };
}
