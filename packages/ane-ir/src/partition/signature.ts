/**
 * A structural signature of a kernel: two kernels with equal signatures lower to the same program
 * (same ops, attributes, shapes, MIL names, constants and boundary layout), whatever their values
 * are called in the graph. The partitioner lowers one kernel per signature.
 */
import type { ConstantData } from '../graph/data';
import { isConstantLike, type Tensor } from '../graph/tensor';

const DATA_IDS = new WeakMap<ConstantData, number>();
let nextDataId = 0;

/** Small data by content, large data by identity (shared tables, masks). */
function dataKey(data: ConstantData | undefined): string {
  if (data === undefined) return 'none';
  if (data.values.length <= 64) return `${data.dtype}[${Array.from(data.values).join(',')}]`;
  let id = DATA_IDS.get(data);
  if (id === undefined) {
    id = nextDataId++;
    DATA_IDS.set(data, id);
  }
  return `${data.dtype}#${id}`;
}

function label(node: Tensor): string {
  return node.label;
}

function constantKey(node: Tensor): string {
  const op = node.op;
  if (op.kind === 'constant') {
    return `C(${dataKey(op.data)},${op.blobFile ?? ''},${op.quantized === undefined ? '' : `${op.quantized.scale}/${op.quantized.zeroPoint}`})`;
  }
  if (op.kind === 'param') return `P(${dataKey(op.data)},${op.blobFile ?? ''})`;
  return '?';
}

export function kernelSignature(
  kernel: { readonly nodes: readonly Tensor[]; readonly outputs: readonly Tensor[] },
  bounds: ReadonlyMap<Tensor, number | undefined>,
): string {
  const index = new Map<Tensor, string>();
  const boundary: Tensor[] = [];
  const parts: string[] = [];
  const ref = (value: Tensor): string => {
    const inside = index.get(value);
    if (inside !== undefined) return inside;
    if (value.op.kind === 'constant' || isConstantLike(value)) {
      return `${constantKey(value)}:${value.dtype}[${value.shape.join(',')}]:${label(value)}`;
    }
    let i = boundary.indexOf(value);
    if (i < 0) {
      boundary.push(value);
      i = boundary.length - 1;
      const trainable = value.op.kind === 'param' && value.op.trainable;
      parts.push(
        `B${i}=${value.op.kind}${trainable ? `:${label(value)}` : ''}:${value.dtype}[${value.shape.join(',')}]:${bounds.get(value) ?? ''}`,
      );
    }
    return `b${i}`;
  };
  const nodes = [...kernel.nodes].sort((a, b) => a.id - b.id);
  nodes.forEach((node, i) => {
    parts.push(
      `${JSON.stringify(node.op)}|${node.dtype}[${node.shape.join(',')}]|${label(node)}|${node.inputs.map(ref).join(',')}`,
    );
    index.set(node, `n${i}`);
  });
  parts.push(`out:${kernel.outputs.map(ref).join(',')}`);
  return parts.join(';');
}
