/**
 * Element types of graph tensors. The ANE computes in fp16; fp32 exists at kernel edges (with an
 * in-graph cast), int32 for token ids on the host, int8 for quantized weights and activations, bool
 * for host-side masks.
 */
export const DTYPES = ['fp16', 'fp32', 'int32', 'int8', 'bool'] as const;

export type DType = (typeof DTYPES)[number];

export function isDType(value: unknown): value is DType {
  return typeof value === 'string' && (DTYPES as readonly string[]).includes(value);
}

export function isFloatDType(dtype: DType): dtype is 'fp16' | 'fp32' {
  return dtype === 'fp16' || dtype === 'fp32';
}

/** Bytes one element takes in a dense buffer (bool as one byte). */
export function dtypeByteWidth(dtype: DType): number {
  switch (dtype) {
    case 'fp32':
    case 'int32':
      return 4;
    case 'fp16':
      return 2;
    case 'int8':
    case 'bool':
      return 1;
  }
}

/** Number of elements of a shape (1 for a scalar `[]`). */
export function shapeSize(shape: readonly number[]): number {
  let size = 1;
  for (const dim of shape) size *= dim;
  return size;
}

/** `[1, 64, 1, 32]` */
export function formatShape(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}
