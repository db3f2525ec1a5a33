/**
 * "Did you mean": the known name nearest to a mistyped one, by edit distance, when it is near
 * enough to be a typo (at most a third of the name's letters, and never for a two-letter guess).
 */
/** Edits from a to b, a swap of two neighbouring letters counting as one (the commonest typo). */
function distance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i]![j] = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i]![j] = Math.min(d[i]![j]!, d[i - 2]![j - 2]! + 1);
    }
  }
  return d[a.length]![b.length]!;
}

export function closest(name: string, known: readonly string[]): string | undefined {
  let best: { name: string; d: number } | undefined;
  for (const k of known) {
    const d = distance(name.toLowerCase(), k.toLowerCase());
    if (!best || d < best.d) best = { name: k, d };
  }
  if (!best || best.d === 0 || name.length < 3) return undefined;
  return best.d <= Math.max(1, Math.floor(Math.max(name.length, best.name.length) / 3)) ? best.name : undefined;
}

/** " (did you mean X?)" or nothing. */
export function didYouMean(name: string, known: readonly string[]): string {
  const guess = closest(name, known);
  return guess ? ` (did you mean ${guess}?)` : '';
}
