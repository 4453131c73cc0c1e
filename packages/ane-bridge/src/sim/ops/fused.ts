/**
 * A fused chain of elementwise ops (see ../fusion.ts, which plans them): the chain's index space is
 * walked in blocks of FUSED_BLOCK elements; each block's operands are loaded into registers, every
 * op runs over the registers with its own arithmetic and rounding, and only the values read after
 * the chain are stored. Each op computes exactly what it computes alone (the same per-element
 * code, the same fp16 rounding), so every stored value has the bits of the unfused ops; what goes
 * is the memory traffic of the values only the chain reads, the copies behind sliced operands
 * (read in place through their walks), and a call per op.
 *
 * The native chain (native/kernels/sim_ops.cc fusedElementwise) and this file's TS twin run the
 * same instructions; the twin calls the ops' own TS twins on each block.
 */
import { runSimOpWriting } from '../native-ops';
import type { FloatTensor } from '../tensor';
import type { BinaryArithmeticOp, UnaryOp } from './elementwise';
import { BINARY_ARITHMETIC_OPS, binaryArithmeticTwin, NATIVE_UNARY_OPS, unaryTwin } from './elementwise';

/** Elements per register per block (as native/kernels/sim_ops.cc kFusedBlock; any length gives the same bits). */
export const FUSED_BLOCK = 512;

/** Operand element i of the chain is `data[rowOffsets[i / inner] + (i % inner) * stride]`. */
export interface FusedOperand {
  readonly data: Float32Array;
  readonly inner: number;
  readonly stride: number;
  readonly rowOffsets: Int32Array;
}

export type FusedInstruction =
  | { readonly kind: 'load'; readonly dst: number; readonly operand: number }
  | {
      readonly kind: 'binary';
      readonly op: BinaryArithmeticOp;
      readonly dst: number;
      readonly a: number;
      readonly b: number;
      readonly fp16: boolean;
    }
  | {
      readonly kind: 'unary';
      readonly op: UnaryOp;
      readonly dst: number;
      readonly a: number;
      readonly epsilon: number;
      readonly fp16: boolean;
    }
  | { readonly kind: 'store'; readonly output: number; readonly src: number };

export interface FusedChain {
  readonly code: readonly FusedInstruction[];
  readonly operands: readonly FusedOperand[];
  /** Each of `length` elements. */
  readonly outputs: readonly Float32Array[];
  readonly registers: number;
  readonly length: number;
}

/** A chain encoded once for the native op, with the twin's registers. */
export interface PreparedChain extends FusedChain {
  readonly encoded: Int32Array;
  readonly epsilons: Float64Array;
  readonly walks: Int32Array;
  readonly operandData: readonly Float32Array[];
  readonly rowOffsets: readonly Int32Array[];
}

const KIND_CODES = { load: 0, binary: 1, unary: 2, store: 3 } as const;

/**
 * `operand` as one row when its rows are contiguous (stride 1) or all the same value (stride 0), so
 * a block is read in place rather than gathered across a row boundary.
 */
function asOneRow(operand: FusedOperand, length: number): FusedOperand {
  const { inner, stride, rowOffsets } = operand;
  if (inner >= length || (stride !== 0 && stride !== 1)) return operand;
  const first = rowOffsets[0]!;
  const rows = Math.ceil(length / inner);
  for (let row = 1; row < rows; row++) if (rowOffsets[row] !== first + row * inner * stride) return operand;
  return { data: operand.data, inner: length, stride, rowOffsets: Int32Array.of(first) };
}

/** Encodes `chain` for the native op (done once, when the program is planned). */
export function prepareChain(source: FusedChain): PreparedChain {
  const chain = { ...source, operands: source.operands.map((operand) => asOneRow(operand, source.length)) };
  const encoded = new Int32Array(6 * chain.code.length);
  const epsilons = new Float64Array(chain.code.length);
  chain.code.forEach((instruction, k) => {
    const at = 6 * k;
    encoded[at] = KIND_CODES[instruction.kind];
    switch (instruction.kind) {
      case 'load':
        encoded.set([0, instruction.dst, instruction.operand, 0, 0], at + 1);
        break;
      case 'binary':
        encoded.set(
          [
            BINARY_ARITHMETIC_OPS.indexOf(instruction.op),
            instruction.dst,
            instruction.a,
            instruction.b,
            instruction.fp16 ? 1 : 0,
          ],
          at + 1,
        );
        break;
      case 'unary':
        encoded.set(
          [
            NATIVE_UNARY_OPS.indexOf(instruction.op),
            instruction.dst,
            instruction.a,
            0,
            instruction.fp16 ? 1 : 0,
          ],
          at + 1,
        );
        epsilons[k] = instruction.epsilon;
        break;
      case 'store':
        encoded.set([0, instruction.output, instruction.src, 0, 0], at + 1);
        break;
    }
  });
  const walks = new Int32Array(2 * chain.operands.length);
  chain.operands.forEach((operand, k) => {
    walks[2 * k] = operand.inner;
    walks[2 * k + 1] = operand.stride;
  });
  return {
    ...chain,
    encoded,
    epsilons,
    walks,
    operandData: chain.operands.map((operand) => operand.data),
    rowOffsets: chain.operands.map((operand) => operand.rowOffsets),
  };
}

/** Runs a prepared chain: native, its TS twin, or both compared (see ../native-ops.ts). */
export function runFusedChain(chain: PreparedChain): void {
  runSimOpWriting(
    'fused',
    chain.outputs,
    (ops) =>
      ops.fused(
        chain.encoded,
        chain.epsilons,
        chain.registers,
        chain.length,
        chain.operandData,
        chain.walks,
        chain.rowOffsets,
        chain.outputs,
      ),
    () => fusedChainTwin(chain),
  );
}

function loadTwin(register: Float32Array, operand: FusedOperand, begin: number, end: number): void {
  const { data, inner, stride, rowOffsets } = operand;
  for (let i = begin; i < end; i++) {
    const row = Math.floor(i / inner);
    register[i - begin] = data[rowOffsets[row]! + (i - row * inner) * stride]!;
  }
}

/** The twin: the same blocks and instructions, each op through its own TS twin. */
function fusedChainTwin(chain: FusedChain): void {
  const file = Array.from({ length: chain.registers }, () => new Float32Array(FUSED_BLOCK));
  for (let begin = 0; begin < chain.length; begin += FUSED_BLOCK) {
    const end = Math.min(chain.length, begin + FUSED_BLOCK);
    const n = end - begin;
    const register = (r: number) => file[r]!.subarray(0, n);
    const dense = { rows: 1, inner: n, innerStrides: [1, 1], rowOffsets: [ZERO, ZERO] };
    for (const instruction of chain.code) {
      switch (instruction.kind) {
        case 'load':
          loadTwin(file[instruction.dst]!, chain.operands[instruction.operand]!, begin, end);
          break;
        case 'binary': {
          const out: FloatTensor = {
            dtype: instruction.fp16 ? 'fp16' : 'fp32',
            shape: [n],
            data: register(instruction.dst),
          };
          binaryArithmeticTwin(instruction.op, out, register(instruction.a), register(instruction.b), dense);
          break;
        }
        case 'unary': {
          const out: FloatTensor = {
            dtype: instruction.fp16 ? 'fp16' : 'fp32',
            shape: [n],
            data: register(instruction.dst),
          };
          unaryTwin(instruction.op, out, register(instruction.a), { epsilon: instruction.epsilon });
          break;
        }
        case 'store':
          chain.outputs[instruction.output]!.set(register(instruction.src), begin);
          break;
      }
    }
  }
}

const ZERO = new Int32Array(1);
