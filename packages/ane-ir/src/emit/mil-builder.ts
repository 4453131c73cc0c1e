/**
 * Builds an ane-ir/mil AST (and its weight blobs) for one kernel, in the dialect of
 * reference/maderix-ane.md §2: every op parameter is a named const declared just before its first
 * use and shared by every op that passes the same value; every statement carries a unique
 * `name`; constant tensors are BLOBFILE consts written with the MILBlob v2 writer. Value names are
 * chosen at `build()` (outputs first, then in statement order), so the text is deterministic.
 */

import type { ConstantData } from '../graph/data';
import type {
  Argument,
  BuildInfo,
  MilProgram,
  OpStatement,
  ScalarData,
  SourcePosition,
  Value,
} from '../mil/ast';
import { type BlobDtype, type BlobTensor, writeBlobFile } from '../mil/blob';
import { roundToFp16 } from '../mil/fp16';
import { OP_SCHEMAS } from '../mil/schemas';
import {
  type MilDtype,
  type ScalarType,
  scalarType,
  type TensorType,
  tensorType,
  type ValueType,
} from '../mil/types';

/** 'ios18': program(1.3), shorthand scalars (the default). 'ios16': program(1.0), verbose scalars, for older chips. */
export type Dialect = 'ios18' | 'ios16';

/** buildInfo of program(1.3) as maderix/ANE and the corpus write it. */
export const DEFAULT_BUILD_INFO: readonly (readonly [string, string])[] = [
  ['coremlc-component-MIL', '3510.2.1'],
  ['coremlc-version', '3505.4.1'],
  ['coremltools-component-milinternal', ''],
  ['coremltools-version', '9.0'],
];

/** buildInfo of the program(1.0) fallback dialect (maderix/ANE PR #6): the compiler version only. */
export const IOS16_BUILD_INFO: readonly (readonly [string, string])[] = [['coremlc-version', '3505.4.1']];

const POSITION: SourcePosition = { line: 1, column: 1 };

/** A value of the program: a function parameter or an op (or const) result. */
export interface MilValue {
  readonly id: number;
  /** The name it should get (sanitized and made unique at build). */
  label: string;
  readonly type: ValueType;
  /** The graph node it computes, for messages. */
  readonly origin: string | undefined;
}

/** An op argument: a value, a hoisted op parameter (by index), or a tuple of values. */
export type MilArg =
  | { readonly kind: 'value'; readonly value: MilValue }
  | { readonly kind: 'param'; readonly index: number }
  | { readonly kind: 'tuple'; readonly items: readonly MilValue[] };

interface ConstParam {
  readonly role: string;
  readonly type: ValueType;
  readonly data: readonly ScalarData[];
}

type Entry =
  | { readonly kind: 'param-const'; readonly index: number }
  | {
      readonly kind: 'op';
      readonly op: string;
      readonly args: readonly (readonly [string, MilArg])[];
      readonly out: MilValue;
    }
  | { readonly kind: 'blob'; readonly out: MilValue; readonly blob: PendingBlob }
  | {
      readonly kind: 'dequantize';
      readonly out: MilValue;
      readonly blob: PendingBlob;
      readonly scale: number;
      readonly zeroPoint: number;
    };

interface PendingBlob {
  readonly file: string;
  readonly tensor: BlobTensor;
  readonly type: TensorType;
}

export interface BuildOptions {
  dialect: Dialect;
  buildInfo?: readonly (readonly [string, string])[];
}

export interface BuiltProgram {
  readonly program: MilProgram;
  readonly weights: Map<string, Uint8Array>;
  /** Final name of every value. */
  readonly names: ReadonlyMap<MilValue, string>;
}

const BLOB_PREFIX = '@model_path/weights/';

export class MilBuilder {
  private readonly params: MilValue[] = [];
  private readonly entries: Entry[] = [];
  private readonly constParams: ConstParam[] = [];
  private readonly constIndex = new Map<string, number>();
  private readonly emittedConsts = new Set<number>();
  private nextId = 0;

  constructor(readonly dialect: Dialect) {}

  /** A function parameter (fixed name). */
  param(name: string, type: ValueType, origin?: string): MilValue {
    const value = this.value(name, type, origin);
    this.params.push(value);
    return value;
  }

  /** A hoisted int32 vector op parameter (`shape`, `perm`, `begin`, ...). */
  ints(role: string, values: readonly number[]): MilArg {
    return this.constParam(role, tensorType('int32', [values.length]), values);
  }

  int(role: string, value: number): MilArg {
    return this.constParam(role, scalarType('int32'), [value]);
  }

  bool(value: boolean): MilArg {
    return this.constParam(value ? 'bT' : 'bF', scalarType('bool'), [value]);
  }

  string(role: string, value: string): MilArg {
    return this.constParam(role, scalarType('string'), [value]);
  }

  /** A hoisted float scalar (fp16 values are stored as the fp16 number they denote). */
  float(role: string, dtype: 'fp16' | 'fp32', value: number): MilArg {
    const stored = dtype === 'fp16' ? roundToFp16(value) : Math.fround(value);
    return this.constParam(role, scalarType(dtype), [stored]);
  }

  /** A constant tensor stored in a weight blob file. */
  blob(label: string, type: TensorType, data: ConstantData, file: string, origin?: string): MilValue {
    const out = this.value(label, type, origin);
    this.entries.push({ kind: 'blob', out, blob: { file, type, tensor: blobTensorOf(data) } });
    return out;
  }

  /** `constexpr_affine_dequantize` of int8 data from a blob: fp16 `scale * (q - zeroPoint)`. */
  dequantizedBlob(
    label: string,
    shape: readonly number[],
    data: ConstantData,
    scale: number,
    zeroPoint: number,
    file: string,
    origin?: string,
  ): MilValue {
    const out = this.value(label, tensorType('fp16', shape), origin);
    this.entries.push({
      kind: 'dequantize',
      out,
      scale,
      zeroPoint,
      blob: { file, type: tensorType('int8', shape), tensor: blobTensorOf(data) },
    });
    return out;
  }

  /** An op statement; its result is a new value. */
  op(
    op: string,
    args: readonly (readonly [string, MilArg])[],
    type: ValueType,
    label: string,
    origin?: string,
  ): MilValue {
    for (const [, arg] of args) if (arg.kind === 'param') this.emitConst(arg.index);
    const out = this.value(label, type, origin);
    this.entries.push({ kind: 'op', op, args, out });
    return out;
  }

  /** The op that computes `value` and its arguments, when it is an op result. */
  producer(
    value: MilValue,
  ): { readonly op: string; readonly args: readonly (readonly [string, MilArg])[] } | undefined {
    const entry = this.entries.find((e) => e.kind === 'op' && e.out === value);
    return entry?.kind === 'op' ? entry : undefined;
  }

  /** Drops ops (and then consts) whose results nothing uses: layout conversions made redundant later. */
  private eliminateDeadCode(returns: readonly MilValue[]): void {
    for (;;) {
      const used = new Set<MilValue>(returns);
      const usedParams = new Set<number>();
      for (const entry of this.entries) {
        if (entry.kind !== 'op') continue;
        for (const [, arg] of entry.args) {
          if (arg.kind === 'value') used.add(arg.value);
          else if (arg.kind === 'tuple') for (const item of arg.items) used.add(item);
          else usedParams.add(arg.index);
        }
      }
      const before = this.entries.length;
      const kept = this.entries.filter((entry) =>
        entry.kind === 'param-const' ? usedParams.has(entry.index) : used.has(entry.out),
      );
      this.entries.splice(0, this.entries.length, ...kept);
      if (kept.length === before) return;
    }
  }

  /** Builds the AST: names values (`reserved` first, e.g. the outputs), writes the blobs. */
  build(returns: readonly MilValue[], options: BuildOptions): BuiltProgram {
    this.eliminateDeadCode(returns);
    const names = new Map<MilValue, string>();
    const constNames = new Map<number, string>();
    const taken = new Set<string>();
    const claim = (label: string): string => {
      const base = sanitize(label);
      let name = base;
      for (let n = 1; taken.has(name) || isReservedValueName(name); n++) name = `${base}_${n}`;
      taken.add(name);
      return name;
    };
    for (const param of this.params) names.set(param, claim(param.label));
    for (const value of returns) if (!names.has(value)) names.set(value, claim(value.label));
    for (const entry of this.entries) {
      if (entry.kind === 'param-const')
        constNames.set(entry.index, claim(this.constParams[entry.index]!.role));
      else if (!names.has(entry.out)) names.set(entry.out, claim(entry.out.label));
    }

    // Blob files in order of first use; each record's offset is what its BLOBFILE names.
    const files = new Map<string, PendingBlob[]>();
    for (const entry of this.entries) {
      if (entry.kind !== 'blob' && entry.kind !== 'dequantize') continue;
      const list = files.get(entry.blob.file) ?? [];
      list.push(entry.blob);
      files.set(entry.blob.file, list);
    }
    const weights = new Map<string, Uint8Array>();
    const offsets = new Map<PendingBlob, number>();
    for (const [file, blobs] of files) {
      const written = writeBlobFile(blobs.map((b) => b.tensor));
      weights.set(`${BLOB_PREFIX}${file}`, written.bytes);
      blobs.forEach((b, i) => {
        offsets.set(b, written.offsets[i]!);
      });
    }

    const verbose = this.dialect === 'ios16';
    const scalar = (dtype: MilDtype): ScalarType | TensorType =>
      verbose ? tensorType(dtype, []) : scalarType(dtype);
    const nameAttr = (name: string): Value => ({
      kind: 'scalar',
      type: scalar('string'),
      value: name,
      position: POSITION,
    });
    const literal = (param: ConstParam): Value => {
      if (param.type.kind === 'scalar') {
        return { kind: 'scalar', type: scalar(param.type.dtype), value: param.data[0]!, position: POSITION };
      }
      return { kind: 'tensor', type: param.type, data: param.data, position: POSITION };
    };
    const valueType = (type: ValueType): ValueType => (type.kind === 'scalar' ? scalar(type.dtype) : type);
    const blobValue = (blob: PendingBlob): Value => ({
      kind: 'blob',
      type: blob.type,
      path: `${BLOB_PREFIX}${blob.file}`,
      offset: offsets.get(blob)!,
      position: POSITION,
    });
    const ref = (value: MilValue): Argument => ({ kind: 'ref', name: names.get(value)!, position: POSITION });

    const body: OpStatement[] = this.entries.map((entry): OpStatement => {
      switch (entry.kind) {
        case 'param-const': {
          const param = this.constParams[entry.index]!;
          const name = constNames.get(entry.index)!;
          return statement(name, valueType(param.type), 'const', new Map(), [
            ['name', nameAttr(name)],
            ['val', literal(param)],
          ]);
        }
        case 'blob': {
          const name = names.get(entry.out)!;
          return statement(name, entry.out.type, 'const', new Map(), [
            ['name', nameAttr(name)],
            ['val', blobValue(entry.blob)],
          ]);
        }
        case 'dequantize': {
          const name = names.get(entry.out)!;
          return statement(name, entry.out.type, 'constexpr_affine_dequantize', new Map(), [
            ['axis', { kind: 'scalar', type: scalar('int32'), value: 0, position: POSITION }],
            ['name', nameAttr(name)],
            ['quantized_data', blobValue(entry.blob)],
            [
              'scale',
              { kind: 'scalar', type: scalar('fp16'), value: roundToFp16(entry.scale), position: POSITION },
            ],
            [
              'zero_point',
              { kind: 'scalar', type: scalar('int8'), value: entry.zeroPoint, position: POSITION },
            ],
          ]);
        }
        case 'op': {
          const name = names.get(entry.out)!;
          const args = new Map<string, Argument>();
          for (const [key, arg] of entry.args) {
            if (arg.kind === 'value') args.set(key, ref(arg.value));
            else if (arg.kind === 'param') {
              args.set(key, { kind: 'ref', name: constNames.get(arg.index)!, position: POSITION });
            } else {
              args.set(key, {
                kind: 'tuple',
                items: arg.items.map((item) => ref(item) as never),
                position: POSITION,
              });
            }
          }
          return statement(name, valueType(entry.out.type), entry.op, args, [['name', nameAttr(name)]]);
        }
        default:
          throw new Error('unreachable');
      }
    });

    const buildInfoEntries = options.buildInfo ?? (verbose ? IOS16_BUILD_INFO : DEFAULT_BUILD_INFO);
    const buildInfo: BuildInfo = {
      keyType: scalar('string'),
      valueType: scalar('string'),
      entries: buildInfoEntries.map(([key, value]) => ({ key, value })),
      position: POSITION,
    };
    const program: MilProgram = {
      version: verbose ? '1.0' : '1.3',
      buildInfo,
      functions: [
        {
          name: 'main',
          opset: this.dialect,
          params: this.params.map((p) => ({ name: names.get(p)!, type: p.type, position: POSITION })),
          body,
          returns: returns.map((r) => ({ name: names.get(r)!, position: POSITION })),
          position: POSITION,
        },
      ],
      position: POSITION,
    };
    return { program, weights, names };
  }

  private value(label: string, type: ValueType, origin: string | undefined): MilValue {
    return { id: this.nextId++, label, type, origin };
  }

  private constParam(role: string, type: ValueType, data: readonly ScalarData[]): MilArg {
    // Bools are shared by value (bF, bT); other parameters by role and value (strides apart from dilations).
    const key = `${type.dtype === 'bool' ? '' : role}:${type.kind}:${type.dtype}:${type.kind === 'tensor' ? type.shape.join(',') : ''}:${data.map((d) => (typeof d === 'number' && Object.is(d, -0) ? '-0' : String(d))).join(',')}`;
    let index = this.constIndex.get(key);
    if (index === undefined) {
      index = this.constParams.length;
      this.constParams.push({ role, type, data });
      this.constIndex.set(key, index);
    }
    return { kind: 'param', index };
  }

  private emitConst(index: number): void {
    if (this.emittedConsts.has(index)) return;
    this.emittedConsts.add(index);
    this.entries.push({ kind: 'param-const', index });
  }
}

function statement(
  name: string,
  type: ValueType,
  op: string,
  args: Map<string, Argument>,
  attributes: readonly (readonly [string, Value])[],
): OpStatement {
  return {
    kind: 'op',
    outputs: [{ name, type, position: POSITION }],
    op,
    args,
    attributes: new Map(attributes),
    position: POSITION,
  };
}

function blobTensorOf(data: ConstantData): BlobTensor {
  const dtype: BlobDtype = data.dtype === 'bool' ? 'uint8' : data.dtype;
  return { dtype, data: data.values };
}

/** Words the parser reads as literals or keywords; never value names. */
const RESERVED_WORDS = new Set(['true', 'false', 'const', 'func', 'program', 'tensor', 'BLOBFILE']);

/** Whether `name` cannot name a value (a literal, a keyword or an op's name): `build` renames such labels. */
export function isReservedValueName(name: string): boolean {
  return RESERVED_WORDS.has(name) || OP_SCHEMAS.has(name);
}

/** A MIL identifier `[A-Za-z_][A-Za-z0-9_]*` from any label. */
export function sanitize(label: string): string {
  let name = label.replace(/[^A-Za-z0-9_]/g, '_');
  if (name === '' || /^[0-9]/.test(name)) name = `v_${name}`;
  return name;
}
