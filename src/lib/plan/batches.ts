/** Resolves `3` or `25%` against a fleet size; percentages round up so that 1% of 10 nodes is 1. */
export function resolveCount(value: number | string, total: number, minimum = 0): number {
  const count = typeof value === 'number' ? value : Math.ceil((parseFloat(value) / 100) * total);
  return Math.max(minimum, Math.min(count, total));
}

/** Splits nodes into batches: an optional canary batch first, then batches of `batchSize`. */
export function computeBatches(
  names: readonly string[],
  batchSize: number | string,
  canary: number,
): { canary: boolean; nodes: string[] }[] {
  const size = resolveCount(batchSize, names.length, 1);
  const batches: { canary: boolean; nodes: string[] }[] = [];
  let start = 0;
  if (canary > 0 && names.length > 0) {
    batches.push({ canary: true, nodes: names.slice(0, canary) });
    start = Math.min(canary, names.length);
  }
  for (let i = start; i < names.length; i += size)
    batches.push({ canary: false, nodes: names.slice(i, i + size) });
  return batches;
}
