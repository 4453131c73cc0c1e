/** The MIL op computing each graph unary, binary and comparison primitive (one table for inference and layout). */
import type { BinaryFn, CompareFn, UnaryFn } from '../graph/tensor';

export const UNARY_MIL: Readonly<Record<UnaryFn, string>> = {
  exp: 'exp',
  sqrt: 'sqrt',
  sigmoid: 'sigmoid',
  tanh: 'tanh',
  relu: 'relu',
  log: 'log',
};

export const BINARY_MIL: Readonly<Record<BinaryFn, string>> = {
  add: 'add',
  sub: 'sub',
  mul: 'mul',
  div: 'real_div',
  pow: 'pow',
  maximum: 'maximum',
  minimum: 'minimum',
};

export const COMPARE_MIL: Readonly<Record<CompareFn, string>> = {
  greater: 'greater',
  less: 'less',
  equal: 'equal',
};
