/** Suggestions for a mistyped name: the same name in other case, or names one or two edits away. */

/** Levenshtein distance: insertions, deletions and substitutions, case-sensitive. */
export function editDistance(a: string, b: string): number {
  const previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let diagonal = previous[0]!;
    previous[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const above = previous[j]!;
      previous[j] = Math.min(above + 1, previous[j - 1]! + 1, diagonal + (a[i - 1] === b[j - 1] ? 0 : 1));
      diagonal = above;
    }
  }
  return previous[b.length]!;
}

/** The closest of `candidates` to `given` (case-insensitive match first), or undefined when none is close. */
export function closestName(given: string, candidates: readonly string[]): string | undefined {
  const lower = given.toLowerCase();
  const sameLetters = candidates.find((c) => c.toLowerCase() === lower);
  if (sameLetters !== undefined) return sameLetters;
  let best: string | undefined;
  let bestDistance = Number.POSITIVE_INFINITY;
  for (const candidate of candidates) {
    const distance = editDistance(lower, candidate.toLowerCase());
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  // Short names need an exact match but for case ('m4' -> 'M4'): one edit of two letters is a different name.
  const allowed = Math.min(2, Math.floor(given.length / 3));
  return bestDistance <= allowed ? best : undefined;
}

/** `; did you mean 'x'?` when a candidate is close, otherwise ''. */
export function didYouMean(given: string, candidates: readonly string[], quote = "'"): string {
  const close = closestName(given, candidates);
  return close === undefined ? '' : `; did you mean ${quote}${close}${quote}?`;
}
