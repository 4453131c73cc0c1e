/** The MIL op computing each graph unary and binary primitive (one table for inference and layout). */
import type { BinaryFn, UnaryFn } from '../graph/tensor';

export const UNARY_MIL: Readonly<Record<UnaryFn, string>> = {
  exp: 'exp',
  sqrt: 'sqrt',
  sigmoid: 'sigmoid',
  tanh: 'tanh',
  relu: 'relu',
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
