/**
 * What a diff shows for content that must not be shown (DESIGN §5.13): how many bytes changed,
 * counted between the longest common head and tail, never which.
 */
export function hiddenContentDiff(beforeText: string, afterText: string): string {
  const after = Buffer.from(afterText);
  const before = Buffer.from(beforeText);
  let head = 0;
  while (head < after.length && head < before.length && after[head] === before[head]) head++;
  let tail = 0;
  while (tail < after.length - head && tail < before.length - head && after[after.length - 1 - tail] === before[before.length - 1 - tail]) tail++;
  return `(content hidden, ${Math.max(after.length, before.length) - head - tail} bytes changed)`;
}
