/**
 * The layout pass: every tensor of a rewritten kernel graph to the ANE's channels-first rank-4
 * layout, op by op, straight into a `MilBuilder`.
 *
 *   rank 1 [C]        -> [1, C, 1, 1]
 *   rank 2 [C, S]     -> [1, C, 1, S]   ('cf', the I/O and default layout)
 *                     or [1, 1, C, S]   ('mm', the operand layout of matmul and of 2-D transposes)
 *   rank 3 [A, B, C]  -> [1, A, B, C]   (attention heads [H, S, HD])
 *   rank 4            -> itself
 *
 * Only size-1 axes are inserted, so row-major element order never changes: a reshape between two
 * physical shapes is free to reason about, and one between equal shapes disappears. Axes of
 * reductions, softmax, slices and concats are mapped to their physical positions.
 */

import { type MilArg, type MilBuilder, type MilValue, sanitize } from '../emit/mil-builder';
import { type ConstantData, constantElement } from '../graph/data';
import { ConstraintError, IrError } from '../graph/errors';
import type { Tensor } from '../graph/tensor';
import type { ChipFamily } from '../mil/rules';
import { broadcastShapes } from '../mil/schemas';
import { type MilDtype, sameShape, tensorType } from '../mil/types';
import { BINARY_MIL, COMPARE_MIL, UNARY_MIL } from '../ops/mil-names';

export type View = 'cf' | 'mm';

/** The physical (rank-4) shape of a logical shape in a view. */
export function physicalShape(shape: readonly number[], view: View = 'cf'): number[] {
  switch (shape.length) {
    case 0:
      return [1, 1, 1, 1];
    case 1:
      return [1, shape[0]!, 1, 1];
    case 2:
      return view === 'mm' ? [1, 1, shape[0]!, shape[1]!] : [1, shape[0]!, 1, shape[1]!];
    case 3:
      return [1, shape[0]!, shape[1]!, shape[2]!];
    case 4:
      return [...shape];
    default:
      throw new IrError(`rank ${shape.length} has no ANE layout`);
  }
}

/** Where logical axis `axis` of a rank-`rank` tensor sits physically. */
export function physicalAxis(axis: number, rank: number, view: View = 'cf'): number {
  switch (rank) {
    case 1:
      return 1;
    case 2:
      return view === 'mm' ? axis + 2 : axis === 0 ? 1 : 3;
    case 3:
      return axis + 1;
    default:
      return axis;
  }
}

/** Physical axis as MIL text writes it: the last axis as -1 (the corpus spelling for reductions and softmax). */
function axisLiteral(physical: number): number {
  return physical === 3 ? -1 : physical;
}

interface Phys {
  readonly arg: MilArg;
  /** The value, when the operand is not a hoisted scalar const. */
  readonly value: MilValue | undefined;
  readonly view: View;
  readonly shape: readonly number[];
}

function originOf(node: Tensor): string {
  return node.meta.origin ?? node.name;
}

function milDtype(node: Tensor): MilDtype {
  return node.dtype;
}

export interface LayoutResult {
  readonly returns: readonly MilValue[];
  /** Frozen weights emitted as zeros because they have no data. */
  readonly placeholders: readonly string[];
  /** Blob file of each constant node emitted. */
  readonly blobFiles: ReadonlyMap<string, string>;
}

export interface FunctionParamSpec {
  readonly node: Tensor;
  readonly name: string;
}

export interface OutputSpec {
  readonly node: Tensor;
  readonly name: string;
}

/** Lowers the kernel graph reachable from `outputs` into `builder`. */
export function layoutKernel(
  builder: MilBuilder,
  params: readonly FunctionParamSpec[],
  outputs: readonly OutputSpec[],
  chip: ChipFamily,
): LayoutResult {
  return new Layout(builder, chip).run(params, outputs);
}

class Layout {
  private readonly natural = new Map<Tensor, Phys>();
  private readonly views = new Map<Tensor, Map<View, Phys>>();
  private readonly constants = new Map<Tensor, Map<string, Phys>>();
  private readonly placeholders: string[] = [];
  private readonly fileOfConstant = new Map<Tensor, string>();
  private readonly usedFiles = new Set<string>();
  private readonly blobFiles = new Map<string, string>();

  constructor(
    private readonly builder: MilBuilder,
    private readonly chip: ChipFamily,
  ) {}

  run(params: readonly FunctionParamSpec[], outputs: readonly OutputSpec[]): LayoutResult {
    for (const { node, name } of params) {
      const type = tensorType(milDtype(node), physicalShape(node.shape, 'cf'));
      const value = this.builder.param(name, type, originOf(node));
      this.natural.set(node, { arg: { kind: 'value', value }, value, view: 'cf', shape: type.shape });
    }
    const paramValues = new Set(params.map((p) => this.natural.get(p.node)!.value));
    const returns: MilValue[] = [];
    for (const { node, name } of outputs) {
      let phys = this.as(node, 'cf');
      let value = phys.value;
      if (value === undefined || paramValues.has(value) || returns.includes(value)) {
        // A returned name must be computed in the body (emit.live-outputs).
        value = this.builder.op(
          'identity',
          [['x', phys.arg]],
          tensorType(milDtype(node), phys.shape),
          name,
          originOf(node),
        );
        phys = { arg: { kind: 'value', value }, value, view: 'cf', shape: phys.shape };
      }
      value.label = name;
      returns.push(value);
    }
    return { returns, placeholders: this.placeholders, blobFiles: this.blobFiles };
  }

  /** The node in view `view` (rank-2 values convert with a reshape, memoized). */
  private as(node: Tensor, view: View): Phys {
    if (this.isConstant(node)) return this.constant(node, node.shape, view);
    const base = this.lower(node);
    if (node.rank !== 2 || base.view === view) return base;
    let cached = this.views.get(node);
    if (cached === undefined) {
      cached = new Map();
      this.views.set(node, cached);
    }
    const hit = cached.get(view);
    if (hit !== undefined) return hit;
    const shape = physicalShape(node.shape, view);
    const phys = this.reshape(base, shape, view, `${node.label}_${view}`, node);
    cached.set(view, phys);
    return phys;
  }

  private isConstant(node: Tensor): boolean {
    return node.op.kind === 'constant' || (node.op.kind === 'param' && !node.op.trainable);
  }

  private reshape(from: Phys, shape: readonly number[], view: View, label: string, node: Tensor): Phys {
    if (sameShape(from.shape, shape)) return { ...from, view };
    // reshape(reshape(x)) is reshape(x): the inner one disappears if nothing else reads it.
    const producer = from.value === undefined ? undefined : this.builder.producer(from.value);
    if (producer?.op === 'reshape') {
      const source = producer.args.find(([key]) => key === 'x')![1];
      const sourceValue = source.kind === 'value' ? source.value : undefined;
      if (
        sourceValue !== undefined &&
        sourceValue.type.kind === 'tensor' &&
        sameShape(sourceValue.type.shape, shape)
      ) {
        return { arg: source, value: sourceValue, view, shape };
      }
      from = {
        arg: source,
        value: sourceValue,
        view: from.view,
        shape: sourceValue?.type.kind === 'tensor' ? sourceValue.type.shape : from.shape,
      };
    }
    const value = this.builder.op(
      'reshape',
      [
        ['shape', this.builder.ints('shape', shape)],
        ['x', from.arg],
      ],
      tensorType(milDtype(node), shape),
      label,
      originOf(node),
    );
    return { arg: { kind: 'value', value }, value, view, shape };
  }

  private op(
    node: Tensor,
    op: string,
    args: readonly (readonly [string, MilArg])[],
    shape: readonly number[],
    view: View,
    dtype: MilDtype = milDtype(node),
    label = node.label,
  ): Phys {
    const value = this.builder.op(op, args, tensorType(dtype, shape), label, originOf(node));
    return { arg: { kind: 'value', value }, value, view, shape };
  }

  /** A constant (or frozen weight) with logical `shape` in `view`: a scalar const or a blob. */
  private constant(node: Tensor, shape: readonly number[], view: View, asScalar = false): Phys {
    const op = node.op;
    let data: ConstantData | undefined;
    let quantized: { scale: number; zeroPoint: number } | undefined;
    let blobFile: string | undefined;
    if (op.kind === 'constant') {
      data = op.data;
      quantized = op.quantized;
      blobFile = op.blobFile;
    } else if (op.kind === 'param') {
      data = op.data;
      blobFile = op.blobFile;
    } else throw new IrError(`not a constant: ${node}`);
    if (data === undefined) {
      if (!this.placeholders.includes(originOf(node))) this.placeholders.push(originOf(node));
      data = zeros(node.dtype, node.size);
    }
    if (asScalar && quantized === undefined && (node.dtype === 'fp16' || node.dtype === 'fp32')) {
      const arg = this.builder.float(sanitize(node.label), node.dtype, constantElement(data, 0));
      return { arg, value: undefined, view, shape: [] };
    }
    const key = `${view}:${shape.join(',')}`;
    let cached = this.constants.get(node);
    if (cached === undefined) {
      cached = new Map();
      this.constants.set(node, cached);
    }
    const hit = cached.get(key);
    if (hit !== undefined) return hit;
    const physical = physicalShape(shape, view);
    const file = this.fileFor(node, blobFile);
    let value: MilValue;
    if (quantized !== undefined) {
      value = this.builder.dequantizedBlob(
        node.label,
        physical,
        data,
        quantized.scale,
        quantized.zeroPoint,
        file,
        originOf(node),
      );
    } else {
      value = this.builder.blob(node.label, tensorType(node.dtype, physical), data, file, originOf(node));
    }
    const phys: Phys = { arg: { kind: 'value', value }, value, view, shape: physical };
    cached.set(key, phys);
    return phys;
  }

  private fileFor(node: Tensor, hint: string | undefined): string {
    const existing = this.fileOfConstant.get(node);
    if (existing !== undefined) return existing;
    let file = hint;
    if (file === undefined) {
      const base = sanitize(node.label);
      file = `${base}.bin`;
      for (let n = 1; this.usedFiles.has(file); n++) file = `${base}_${n}.bin`;
    }
    this.usedFiles.add(file);
    this.fileOfConstant.set(node, file);
    this.blobFiles.set(originOf(node), file);
    return file;
  }

  /** The node's value in its natural view. */
  private lower(node: Tensor): Phys {
    const done = this.natural.get(node);
    if (done !== undefined) return done;
    const phys = this.lowerOp(node);
    this.natural.set(node, phys);
    return phys;
  }

  private viewOfInputs(node: Tensor): View {
    for (const input of node.inputs) {
      if (input.rank === 2 && !this.isConstant(input)) return this.lower(input).view;
    }
    return 'cf';
  }

  private lowerOp(node: Tensor): Phys {
    const op = node.op;
    const b = this.builder;
    switch (op.kind) {
      case 'input':
      case 'param':
        throw new IrError(`${node} is not a parameter of this kernel`);
      case 'constant':
        return this.constant(node, node.shape, 'cf');
      case 'unary': {
        const x = this.lower(node.inputs[0]!);
        const args: [string, MilArg][] = [['x', x.arg]];
        // log always spells its epsilon (emit-explicit-params), as a constant of x's dtype.
        if (op.fn === 'log')
          args.push(['epsilon', b.float('eps', node.dtype === 'fp32' ? 'fp32' : 'fp16', op.epsilon)]);
        return this.op(node, UNARY_MIL[op.fn]!, args, physicalShape(node.shape, x.view), x.view);
      }
      case 'compare': {
        const view = node.rank === 2 ? this.viewOfInputs(node) : 'cf';
        const [x, y] = node.inputs.map((input) => this.operand(input, node, view)) as [Phys, Phys];
        return this.op(
          node,
          COMPARE_MIL[op.fn]!,
          [
            ['x', x.arg],
            ['y', y.arg],
          ],
          physicalShape(node.shape, view),
          view,
        );
      }
      case 'select': {
        const cond = node.inputs[0]!;
        if (cond.op.kind !== 'compare') {
          throw new ConstraintError(
            'dtype-bool',
            { op: 'select', node: originOf(node) },
            `select's condition '${originOf(cond)}' is a bool ${cond.op.kind}, not a comparison computed in the same kernel`,
            this.chip,
          );
        }
        const view = node.rank === 2 ? this.viewOfInputs(node) : 'cf';
        const [c, x, y] = node.inputs.map((input) => this.operand(input, node, view)) as [Phys, Phys, Phys];
        return this.op(
          node,
          'select',
          [
            ['cond', c.arg],
            ['a', x.arg],
            ['b', y.arg],
          ],
          physicalShape(node.shape, view),
          view,
        );
      }
      case 'binary': {
        const view = node.rank === 2 ? this.viewOfInputs(node) : 'cf';
        const [x, y] = node.inputs.map((input) => this.operand(input, node, view)) as [Phys, Phys];
        return this.op(
          node,
          BINARY_MIL[op.fn]!,
          [
            ['x', x.arg],
            ['y', y.arg],
          ],
          physicalShape(node.shape, view),
          view,
        );
      }
      case 'reduce': {
        const input = node.inputs[0]!;
        const x = this.lower(input);
        const axes = op.axes.map((axis) => axisLiteral(physicalAxis(axis, input.rank, x.view)));
        const kept = input.shape.map((dim, i) => (op.axes.includes(i) ? 1 : dim));
        const keptShape = physicalShape(kept, x.view);
        const reduced = this.op(
          node,
          `reduce_${op.fn}`,
          [
            ['x', x.arg],
            ['axes', b.ints('axes', axes)],
            ['keep_dims', b.bool(true)],
          ],
          keptShape,
          x.view,
        );
        if (op.keepDims) return reduced;
        return this.reshape(reduced, physicalShape(node.shape, 'cf'), 'cf', `${node.label}_r`, node);
      }
      case 'reshape': {
        const x = this.lower(node.inputs[0]!);
        return this.reshape(x, physicalShape(node.shape, 'cf'), 'cf', node.label, node);
      }
      case 'transpose': {
        const input = node.inputs[0]!;
        if (input.rank === 2) {
          const x = this.as(input, 'mm');
          return this.op(
            node,
            'transpose',
            [
              ['perm', b.ints('perm', [0, 1, 3, 2])],
              ['x', x.arg],
            ],
            physicalShape(node.shape, 'mm'),
            'mm',
          );
        }
        const x = this.lower(input);
        const offset = 4 - input.rank;
        const perm = [
          ...Array.from({ length: offset }, (_, i) => i),
          ...op.perm.map((axis) => axis + offset),
        ];
        return this.op(
          node,
          'transpose',
          [
            ['perm', b.ints('perm', perm)],
            ['x', x.arg],
          ],
          physicalShape(node.shape),
          'cf',
        );
      }
      case 'slice': {
        const input = node.inputs[0]!;
        const x = this.lower(input);
        const begin = [0, 0, 0, 0];
        op.begin.forEach((start, axis) => {
          begin[physicalAxis(axis, input.rank, x.view)] = start;
        });
        const size = physicalShape(op.size, x.view);
        return this.op(
          node,
          'slice_by_size',
          [
            ['x', x.arg],
            ['begin', b.ints('begin', begin)],
            ['size', b.ints('size', size)],
          ],
          size,
          x.view,
        );
      }
      case 'concat': {
        const view = node.rank === 2 ? this.viewOfInputs(node) : 'cf';
        const values = node.inputs.map((input) => {
          const phys = this.isConstant(input)
            ? this.constant(input, input.shape, view)
            : this.as(input, view);
          return phys.value!;
        });
        return this.op(
          node,
          'concat',
          [
            ['axis', b.int('axis', physicalAxis(op.axis, node.rank, view))],
            ['interleave', b.bool(false)],
            ['values', { kind: 'tuple', items: values }],
          ],
          physicalShape(node.shape, view),
          view,
        );
      }
      case 'matmul': {
        const [x, y] = node.inputs.map((input) => {
          if (input.rank < 2)
            throw new IrError(
              `matmul '${node.name}': vector operands have no ANE lowering; reshape to [1, K]`,
            );
          return input.rank === 2
            ? this.as(input, 'mm')
            : this.isConstant(input)
              ? this.constant(input, input.shape, 'cf')
              : this.lower(input);
        }) as [Phys, Phys];
        return this.op(
          node,
          'matmul',
          [
            ['transpose_x', b.bool(op.transposeX)],
            ['transpose_y', b.bool(op.transposeY)],
            ['x', x.arg],
            ['y', y.arg],
          ],
          physicalShape(node.shape, 'mm'),
          'mm',
        );
      }
      case 'conv': {
        const [input, weight] = node.inputs as [Tensor, Tensor];
        const x = this.lower(input);
        if (!this.isConstant(weight)) {
          throw new ConstraintError(
            'op-runtime-weight-conv',
            { op: 'conv', node: originOf(node) },
            `conv weight '${originOf(weight)}' is not a constant`,
            this.chip,
          );
        }
        const w = this.constant(weight, weight.shape, 'cf');
        const zeroPad = op.pad.every((p) => p === 0);
        return this.op(
          node,
          'conv',
          [
            ['dilations', b.ints('dilations', op.dilations)],
            ['groups', b.int('groups', op.groups)],
            ['pad', b.ints('pad', op.pad)],
            ['pad_type', b.string('pad_type', zeroPad ? 'valid' : 'custom')],
            ['strides', b.ints('strides', op.strides)],
            ['weight', w.arg],
            ['x', x.arg],
          ],
          physicalShape(node.shape),
          'cf',
        );
      }
      case 'softmax': {
        const input = node.inputs[0]!;
        const x = this.lower(input);
        return this.op(
          node,
          'softmax',
          [
            ['axis', b.int('axis', axisLiteral(physicalAxis(op.axis, input.rank, x.view)))],
            ['x', x.arg],
          ],
          physicalShape(node.shape, x.view),
          x.view,
        );
      }
      case 'cast': {
        const x = this.lower(node.inputs[0]!);
        const shape = physicalShape(node.shape, x.view);
        if (op.scale !== undefined && op.dtype === 'int8') {
          return this.op(
            node,
            'quantize',
            [
              ['input', x.arg],
              ['output_dtype', b.string('q_dtype', 'int8')],
              ['scale', b.float('q_scale', 'fp16', op.scale)],
            ],
            shape,
            x.view,
          );
        }
        if (op.scale !== undefined) {
          return this.op(
            node,
            'dequantize',
            [
              ['input', x.arg],
              ['scale', b.float('dq_scale', 'fp16', op.scale)],
            ],
            shape,
            x.view,
          );
        }
        return this.op(
          node,
          'cast',
          [
            ['dtype', b.string(`to_${op.dtype}`, op.dtype)],
            ['x', x.arg],
          ],
          shape,
          x.view,
        );
      }
      case 'gather':
        throw new ConstraintError(
          'ir-host-only-op',
          { op: 'gather', node: originOf(node) },
          'gather has no ANE lowering',
          this.chip,
        );
    }
  }

  /** A binary operand aligned (NumPy-style, leading 1s) to the result's rank, in `view`. */
  private operand(input: Tensor, node: Tensor, view: View): Phys {
    // A one-element constant becomes a scalar const, except the first operand of an op whose every
    // operand is one (`mul(constant([1], [1, 1]), 0.5)`): an op of scalars alone would return a
    // scalar where the result is declared a tensor.
    const scalarConstant = (t: Tensor) => this.isConstant(t) && t.size === 1;
    if (scalarConstant(input) && !(node.inputs.every(scalarConstant) && input === node.inputs[0])) {
      const broadcast = broadcastShapes(input.shape, node.shape);
      if (broadcast !== undefined && sameShape(broadcast, node.shape))
        return this.constant(input, [], view, true);
    }
    const aligned = [...new Array<number>(node.rank - input.rank).fill(1), ...input.shape];
    if (this.isConstant(input)) return this.constant(input, aligned, view);
    if (aligned.length === input.rank) return this.as(input, view);
    const base = this.lower(input);
    return this.reshape(base, physicalShape(aligned, view), view, `${input.label}_b`, input);
  }
}

function zeros(dtype: Tensor['dtype'], count: number): ConstantData {
  switch (dtype) {
    case 'fp32':
      return { dtype, values: new Float32Array(count) };
    case 'int8':
      return { dtype, values: new Int8Array(count) };
    case 'int32':
      return { dtype, values: new Int32Array(count) };
    case 'bool':
      return { dtype, values: new Uint8Array(count) };
    default:
      return { dtype: 'fp16', values: new Uint16Array(count) };
  }
}
