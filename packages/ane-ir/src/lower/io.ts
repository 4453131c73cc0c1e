/**
 * Kernel I/O: which values enter and leave a kernel, and how they are packed. By default a kernel
 * has one input and one output (maderix/ANE's proven pattern): trainable weights travel packed next
 * to the activations along the spatial axis of the single input (so weight updates never recompile)
 * and are sliced apart inside; activations that share the sequence length pack along channels
 * instead. Outputs concatenate along channels ("forward taps").
 */

import { isReservedValueName } from '../emit/mil-builder';
import { ConstraintError } from '../graph/errors';
import { opLabel, type Tensor } from '../graph/tensor';
import type { TensorSpec } from '../mil/program';
import type { ChipFamily } from '../mil/rules';
import { physicalShape } from './layout';

/** 'packed' (default): one input, one output. 'separate': one function parameter per value. */
export type IoMode = 'packed' | 'separate';

/** Where one value sits in a kernel's input or output tensor. */
export interface PackedSegment {
  /** The user-graph value (activation, trainable weight, or returned value), by name. */
  readonly source: string;
  readonly role: 'activation' | 'weight';
  /** The value's shape in the graph (a weight `[out, in]` even when staged transposed). */
  readonly shape: readonly number[];
  /**
   * 'spatial': columns `[offset, offset + extent)` of every channel of `[C, W]`;
   * 'channel': channels `[offset, offset + extent)` of `[C', S]`; 'whole': the tensor is the value.
   */
  readonly axis: 'spatial' | 'channel' | 'whole';
  readonly offset: number;
  readonly extent: number;
  /** Staged transposed: a weight `[out, in]` written as `[in, out]` (channel i holds W[:, i]). */
  readonly transposed: boolean;
}

/** One function parameter or returned value of a kernel, with what it holds. */
export interface KernelPort {
  /** Name, dtype and physical (rank-4, channels-first) shape: the device buffer's layout. */
  readonly spec: TensorSpec;
  /** The logical shape of the packed tensor (`[C, W]` for a packed input). */
  readonly logicalShape: readonly number[];
  readonly segments: readonly PackedSegment[];
}

/** A boundary value of a kernel and how it is staged. */
export interface InputPlacement {
  readonly port: number;
  readonly segment: PackedSegment;
}

export interface IoPlan {
  readonly inputs: readonly KernelPort[];
  readonly outputs: readonly KernelPort[];
  /** Where each boundary value (user-graph node) is staged. */
  readonly placements: ReadonlyMap<Tensor, InputPlacement>;
}

export interface Boundary {
  /** External values the kernel reads, in first-use order. */
  readonly inputs: readonly Tensor[];
  /** Values the kernel returns. */
  readonly outputs: readonly Tensor[];
  /** Names for the outputs in 'separate' mode. */
  readonly outputNames?: readonly string[];
  /**
   * The name a value travels under in segments (`PackedSegment.source`), `packInput` and
   * `unpackOutput`: a graph output's own name (`g.output('y', t)` -> 'y'), else the node's name.
   */
  readonly sourceNames?: ReadonlyMap<Tensor, string>;
  /** Consumers of each input inside the kernel. */
  readonly consumers: ReadonlyMap<Tensor, readonly Tensor[]>;
}

/** The name `node`'s value travels under in the kernel's segments. */
export function sourceName(boundary: Boundary, node: Tensor): string {
  return boundary.sourceNames?.get(node) ?? node.name;
}

export function isTrainableWeight(node: Tensor): boolean {
  return node.op.kind === 'param' && node.op.trainable;
}

/** A weight `[out, in]` used as the left operand of a linear product prefers to be staged `[in, out]`. */
function prefersTransposed(weight: Tensor, consumers: readonly Tensor[]): boolean {
  return (
    weight.rank === 2 &&
    consumers.some(
      (c) => c.op.kind === 'matmul' && !c.op.transposeX && c.inputs[0] === weight && c.inputs[1]!.rank === 2,
    )
  );
}

function ioDtype(node: Tensor): 'fp16' | 'fp32' | undefined {
  return node.dtype === 'fp16' || node.dtype === 'fp32' ? node.dtype : undefined;
}

function spec(name: string, node: Tensor, logicalShape: readonly number[], chip: ChipFamily): TensorSpec {
  const dtype = ioDtype(node);
  if (dtype === undefined) {
    throw new ConstraintError(
      'dtype-io',
      { op: node.op.kind, node: node.name },
      `kernel I/O '${name}' would carry ${node.dtype} '${node.name}' (device buffers hold fp16 or fp32)`,
      chip,
    );
  }
  return { name, dtype, shape: physicalShape(logicalShape, 'cf') };
}

/**
 * Port names: MIL identifiers, distinct from each other and from `taken` (the inputs' names, for
 * the outputs), and never a name the MIL builder would rename (an op's name such as `mul`, a
 * keyword), so the program's parameters and returns are named as its `inputs` and `outputs` say.
 */
function uniqueNames(labels: readonly string[], taken = new Set<string>()): string[] {
  return labels.map((label) => {
    const base = label.replace(/[^A-Za-z0-9_]/g, '_').replace(/^(?=[0-9])/, 'v_') || 'v';
    let name = base;
    for (let n = 1; taken.has(name) || isReservedValueName(name); n++) name = `${base}_${n}`;
    taken.add(name);
    return name;
  });
}

/** Decides the kernel's ports. Throws `ConstraintError` when the values cannot be packed. */
export function planIo(boundary: Boundary, mode: IoMode, chip: ChipFamily): IoPlan {
  const crossing = [...boundary.inputs, ...boundary.outputs].find((node) => node.dtype === 'bool');
  if (crossing !== undefined) {
    // The op to blame is inside the kernel: the reader of a bool input, the producer of a bool output.
    const read = boundary.inputs.includes(crossing);
    const culprit = (read ? boundary.consumers.get(crossing)?.[0] : undefined) ?? crossing;
    throw new ConstraintError(
      'dtype-bool',
      { op: opLabel(culprit.op), node: culprit.name },
      `bool '${crossing.name}' would be ${read ? 'read from outside' : 'returned by'} the kernel (a bool lives only between a comparison and its selects)`,
      chip,
    );
  }
  for (const weight of boundary.inputs.filter(isTrainableWeight)) {
    const conv = (boundary.consumers.get(weight) ?? []).find(
      (c) => c.op.kind === 'conv' && c.inputs[1] === weight,
    );
    if (conv !== undefined) {
      throw new ConstraintError(
        'rt-weights-as-inputs',
        { op: 'conv', node: conv.name },
        `trainable weight '${weight.name}' is a conv weight: conv takes only constant weights, which would bake it into the program`,
        chip,
      );
    }
  }
  const inputs = mode === 'separate' ? separateInputs(boundary, chip) : packedInputs(boundary, chip);
  const outputs =
    mode === 'separate'
      ? separateOutputs(boundary, chip, new Set(inputs.map((port) => port.spec.name)))
      : packedOutputs(boundary, chip);
  const placements = new Map<Tensor, InputPlacement>();
  inputs.forEach((port, index) => {
    for (const segment of port.segments) {
      const node = boundary.inputs.find((n) => sourceName(boundary, n) === segment.source)!;
      placements.set(node, { port: index, segment });
    }
  });
  return { inputs, outputs, placements };
}

/**
 * One parameter per value. A separate port always holds its value in the graph's own layout (a
 * weight `[out, in]` as `[out, in]`), so a user can write the very array they gave the graph into
 * its buffer; only a packed input (`stageTransposed`, staged by `packInput`) may hold `Wᵀ`.
 */
function separateInputs(boundary: Boundary, chip: ChipFamily, stageTransposed = false): KernelPort[] {
  // Activations first, then weights (the order of a packed input).
  const ordered = [
    ...boundary.inputs.filter((n) => !isTrainableWeight(n)),
    ...boundary.inputs.filter(isTrainableWeight),
  ];
  const names = uniqueNames(ordered.map((n) => n.localName));
  return ordered.map((node, i) => {
    const weight = isTrainableWeight(node);
    const transposed =
      stageTransposed && weight && prefersTransposed(node, boundary.consumers.get(node) ?? []);
    const logical = transposed ? [node.shape[1]!, node.shape[0]!] : node.shape;
    return {
      spec: spec(names[i]!, node, logical, chip),
      logicalShape: logical,
      segments: [
        {
          source: sourceName(boundary, node),
          role: weight ? 'weight' : 'activation',
          shape: node.shape,
          axis: 'whole',
          offset: 0,
          extent: logical[logical.length - 1] ?? 1,
          transposed,
        },
      ],
    };
  });
}

/** What works when a graph's values do not pack into one kernel input or output. */
export const PACKING_FIX =
  "cut the graph into kernels that each pack, with `partition(graph)` (and run the plan with ane-bridge's `device.load(plan)`), or give every value its own kernel parameter with `lowerGraph(graph, { io: 'separate' })`.";

function packedInputs(boundary: Boundary, chip: ChipFamily): KernelPort[] {
  const values = boundary.inputs;
  if (values.length === 0) return [];
  if (values.length === 1)
    return separateInputs(boundary, chip, true).map((port) => ({
      ...port,
      spec: { ...port.spec, name: 'x' },
    }));
  const first = values[0]!;
  const fail = (node: Tensor, detail: string): never => {
    throw new ConstraintError(
      isTrainableWeight(node) ? 'rt-weights-as-inputs' : 'ir-single-io',
      { op: node.op.kind, node: node.name },
      detail,
      chip,
      { fix: PACKING_FIX },
    );
  };
  for (const node of values) {
    if (node.dtype !== first.dtype)
      fail(
        node,
        `'${node.name}' is ${node.dtype} but '${first.name}' is ${first.dtype}; one packed input holds one dtype`,
      );
    if (node.rank > 2 || node.rank === 0) {
      fail(
        node,
        `'${node.name}' ${shapeText(node)} has rank ${node.rank}; only [C, S] values pack into one input`,
      );
    }
  }
  const activations = values.filter((n) => !isTrainableWeight(n));
  const weights = values.filter(isTrainableWeight);
  const as2d = (n: Tensor): readonly number[] => (n.rank === 1 ? [n.shape[0]!, 1] : n.shape);

  // Activations sharing S (and no weights): pack along channels.
  const seq = as2d(activations[0] ?? first)[1]!;
  const sharesSeq = activations.every((n) => as2d(n)[1] === seq);
  const channels = as2d(activations[0] ?? first)[0]!;
  if (weights.length === 0 && sharesSeq) {
    let offset = 0;
    const segments = activations.map((node): PackedSegment => {
      const [c] = as2d(node) as [number, number];
      const segment: PackedSegment = {
        source: sourceName(boundary, node),
        role: 'activation',
        shape: node.shape,
        axis: 'channel',
        offset,
        extent: c,
        transposed: false,
      };
      offset += c;
      return segment;
    });
    const logical = [offset, seq];
    return [{ spec: spec('x', first, logical, chip), logicalShape: logical, segments }];
  }

  // Everything shares the channel count: pack along the spatial axis, activations first.
  const kernelChannels =
    activations.length > 0
      ? channels
      : prefersTransposed(first, boundary.consumers.get(first) ?? [])
        ? first.shape[1]!
        : as2d(first)[0]!;
  for (const node of activations) {
    if (as2d(node)[0] !== kernelChannels) {
      fail(
        node,
        `activations ${activations.map(shapeText).join(', ')} share neither the channel count (spatial packing) nor the sequence length (channel packing)`,
      );
    }
  }
  let offset = 0;
  const segments: PackedSegment[] = [];
  for (const node of activations) {
    const width = as2d(node)[1]!;
    segments.push({
      source: sourceName(boundary, node),
      role: 'activation',
      shape: node.shape,
      axis: 'spatial',
      offset,
      extent: width,
      transposed: false,
    });
    offset += width;
  }
  for (const node of weights) {
    let transposed: boolean;
    if (node.rank === 1) {
      if (node.shape[0] !== kernelChannels) fail(node, weightMismatch(node, kernelChannels));
      transposed = false;
    } else {
      const [rows, cols] = node.shape as [number, number];
      const preferT = prefersTransposed(node, boundary.consumers.get(node) ?? []);
      if (preferT && cols === kernelChannels) transposed = true;
      else if (rows === kernelChannels) transposed = false;
      else if (cols === kernelChannels) transposed = true;
      else return fail(node, weightMismatch(node, kernelChannels));
    }
    const width = node.rank === 1 ? 1 : transposed ? node.shape[0]! : node.shape[1]!;
    segments.push({
      source: sourceName(boundary, node),
      role: 'weight',
      shape: node.shape,
      axis: 'spatial',
      offset,
      extent: width,
      transposed,
    });
    offset += width;
  }
  const logical = [kernelChannels, offset];
  return [{ spec: spec('x', first, logical, chip), logicalShape: logical, segments }];
}

function weightMismatch(node: Tensor, channels: number): string {
  return `trainable weight '${node.name}' ${shapeText(node)} shares no axis with the kernel's ${channels} channels; spatial packing needs equal channel counts`;
}

function shapeText(node: Tensor): string {
  return `[${node.shape.join(', ')}]`;
}

function separateOutputs(
  boundary: Boundary,
  chip: ChipFamily,
  inputNames: ReadonlySet<string> = new Set(),
): KernelPort[] {
  const names = uniqueNames(
    boundary.outputNames ?? boundary.outputs.map((n) => n.localName),
    new Set(inputNames),
  );
  return boundary.outputs.map((node, i) => ({
    spec: spec(names[i]!, node, node.shape, chip),
    logicalShape: node.shape,
    segments: [
      {
        source: outputSource(boundary, i),
        role: 'activation',
        shape: node.shape,
        axis: 'whole',
        offset: 0,
        extent: node.shape[node.rank - 1] ?? 1,
        transposed: false,
      },
    ],
  }));
}

/** The source name of output `index`: its given name (one value returned twice keeps both), else the value's. */
function outputSource(boundary: Boundary, index: number): string {
  return boundary.outputNames?.[index] ?? sourceName(boundary, boundary.outputs[index]!);
}

function packedOutputs(boundary: Boundary, chip: ChipFamily): KernelPort[] {
  const outputs = boundary.outputs;
  if (outputs.length <= 1)
    return separateOutputs(boundary, chip).map((port) => ({ ...port, spec: { ...port.spec, name: 'y' } }));
  const first = outputs[0]!;
  const fail = (detail: string): never => {
    throw new ConstraintError('ir-single-io', { op: first.op.kind, node: first.name }, detail, chip, {
      fix: PACKING_FIX,
    });
  };
  if (outputs.some((n) => n.rank !== 2 || n.dtype !== first.dtype)) {
    fail(
      `outputs ${outputs.map((n) => `${n.dtype}${shapeText(n)}`).join(', ')} are not all [C, S] of one dtype`,
    );
  }
  const seq = first.shape[1]!;
  const channels = first.shape[0]!;
  const axis: 'channel' | 'spatial' | undefined = outputs.every((n) => n.shape[1] === seq)
    ? 'channel'
    : outputs.every((n) => n.shape[0] === channels)
      ? 'spatial'
      : undefined;
  if (axis === undefined)
    fail(
      `outputs ${outputs.map(shapeText).join(', ')} share neither the channel count nor the sequence length`,
    );
  let offset = 0;
  const segments = outputs.map((node, index): PackedSegment => {
    const extent = axis === 'channel' ? node.shape[0]! : node.shape[1]!;
    const segment: PackedSegment = {
      source: outputSource(boundary, index),
      role: 'activation',
      shape: node.shape,
      axis: axis!,
      offset,
      extent,
      transposed: false,
    };
    offset += extent;
    return segment;
  });
  const logical = axis === 'channel' ? [offset, seq] : [channels, offset];
  return [{ spec: spec('y', first, logical, chip), logicalShape: logical, segments }];
}
