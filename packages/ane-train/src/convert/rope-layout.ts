/**
 * The two layouts of RoPE's feature pairs in a query/key projection's rows, and the permutation
 * between them.
 *
 * - interleaved (Meta's original Llama, llama2.c): within a head, features (2i, 2i + 1) are one
 *   complex number rotated at frequency i.
 * - rotate-half (Hugging Face, ours): within a head, features i and i + head_dim/2 are the pair.
 *
 * A projection `[heads × head_dim, in]` converts by reordering its rows within each head: Hugging
 * Face's `convert_llama_weights_to_hf.py` `permute` views the rows as `[heads, head_dim/2, 2]` and
 * transposes the last two axes to `[heads, 2, head_dim/2]`. The inverse transposes back.
 */

/**
 * Rows of `w: [heads × headDim, columns]` (row-major) from llama2.c's interleaved layout to
 * Hugging Face's rotate-half: out row h·HD + j·HD/2 + i = in row h·HD + 2i + j (j ∈ {0, 1}).
 */
export function interleavedToRotateHalf(
  w: Float32Array,
  heads: number,
  headDim: number,
  columns: number,
): Float32Array {
  return permuteRows(w, heads, headDim, columns, true);
}

/** The inverse of `interleavedToRotateHalf`: Hugging Face's rotate-half rows to llama2.c's pairs. */
export function rotateHalfToInterleaved(
  w: Float32Array,
  heads: number,
  headDim: number,
  columns: number,
): Float32Array {
  return permuteRows(w, heads, headDim, columns, false);
}

function permuteRows(
  w: Float32Array,
  heads: number,
  headDim: number,
  columns: number,
  toRotateHalf: boolean,
): Float32Array {
  if (headDim % 2 !== 0 || w.length !== heads * headDim * columns) {
    throw new RangeError(
      `RoPE permutation: expected ${heads} heads × head_dim ${headDim} (even) × ${columns} columns = ${heads * headDim * columns} values, got ${w.length}`,
    );
  }
  const half = headDim / 2;
  const out = new Float32Array(w.length);
  for (let h = 0; h < heads; h++) {
    for (let i = 0; i < half; i++) {
      for (let j = 0; j < 2; j++) {
        const interleaved = (h * headDim + 2 * i + j) * columns; // row h·HD + 2i + j
        const rotateHalf = (h * headDim + j * half + i) * columns; // row h·HD + j·HD/2 + i
        const [from, to] = toRotateHalf ? [interleaved, rotateHalf] : [rotateHalf, interleaved];
        out.set(w.subarray(from, from + columns), to);
      }
    }
  }
  return out;
}
