/** The user and group databases' text (passwd, group) as name → numeric id, for any executor. */

/** name → the numeric field `field` of passwd or group lines (2: the id; 3 in passwd: the primary group). */
export function idTable(text: string, field = 2): Map<string, number> {
  const table = new Map<string, number>();
  for (const line of text.split('\n')) {
    const f = line.split(':');
    if (f.length > field && f[0]) table.set(f[0], Number(f[field]));
  }
  return table;
}
