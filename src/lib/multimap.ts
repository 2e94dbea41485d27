/**
 * Appends `value` to the list kept under `key`. Written out because the tempting one-liner,
 * `map.set(key, [...(map.get(key) ?? []), value])`, copies the list on every append: quadratic
 * when one key collects thousands of values (10,000 invocations of one state).
 */
export function pushTo<K, V>(map: Map<K, V[]>, key: K, value: V): void {
  const list = map.get(key);
  if (list) list.push(value);
  else map.set(key, [value]);
}
