/**
 * The gradient comparison of the PyTorch parity tests (src/grads.test.ts, src/grads-qwen3.test.ts):
 * per tensor, max |ours − PyTorch| relative to max |PyTorch| (the error relative to the tensor's
 * largest gradient; see src/grads.test.ts for why this is the fp16 bound and not an elementwise one).
 */

export interface Row {
  tensor: string;
  maxAbs: number;
  /** max |ours − PyTorch| / max |PyTorch|: what the bound bounds. */
  normalized: number;
}

/**
 * One row per tensor of `expected` (NaN when ours lacks it or has another length) and per tensor
 * of `ours` that `expected` lacks (NaN); within the bound when every row's `normalized` ≤ `bound`.
 */
export function compareGradients(
  ours: ReadonlyMap<string, Float32Array>,
  expected: ReadonlyMap<string, Float32Array>,
  bound: number,
): { rows: Row[]; withinBound: boolean } {
  const rows: Row[] = [];
  for (const [name, reference] of expected) {
    const mine = ours.get(name);
    if (mine === undefined || mine.length !== reference.length) {
      rows.push({ tensor: name, maxAbs: Number.NaN, normalized: Number.NaN });
      continue;
    }
    let largest = 0;
    let maxAbs = 0;
    for (let i = 0; i < reference.length; i++) {
      largest = Math.max(largest, Math.abs(reference[i]!));
      const error = Math.abs(mine[i]! - reference[i]!);
      if (!(error <= maxAbs)) maxAbs = error; // NaN sticks
    }
    rows.push({ tensor: name, maxAbs, normalized: maxAbs / largest });
  }
  const extra = [...ours.keys()].filter((name) => !expected.has(name));
  for (const name of extra) rows.push({ tensor: name, maxAbs: Number.NaN, normalized: Number.NaN });
  return { rows, withinBound: rows.every((r) => r.normalized <= bound) };
}

/** The rows as a table for a failing assertion's message. */
export function gradientTable(rows: readonly Row[]): string {
  return rows
    .map(
      (r) =>
        `${r.tensor.padEnd(48)} maxAbs ${r.maxAbs.toExponential(2)}  of max ${(100 * r.normalized).toFixed(3)}%`,
    )
    .join('\n');
}
