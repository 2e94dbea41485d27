/**
 * @peculiar/x509 finds its algorithm providers through tsyringe, which refuses to load unless the
 * Reflect metadata API exists (normally the `reflect-metadata` package, which Cairn does not
 * depend on). tsyringe only stores and reads plain per-class metadata with it (`getMetadata`,
 * `getOwnMetadata`, `defineMetadata`), so a WeakMap per class is the whole of what it needs.
 * A real polyfill already installed is left alone.
 */
type MetadataTarget = object;
const table = new WeakMap<MetadataTarget, Map<unknown, unknown>>();

interface ReflectMetadata {
  getMetadata?: (key: unknown, target: MetadataTarget) => unknown;
  getOwnMetadata?: (key: unknown, target: MetadataTarget) => unknown;
  defineMetadata?: (key: unknown, value: unknown, target: MetadataTarget) => void;
  hasMetadata?: (key: unknown, target: MetadataTarget) => boolean;
  hasOwnMetadata?: (key: unknown, target: MetadataTarget) => boolean;
}

const reflect = Reflect as unknown as ReflectMetadata;
if (typeof reflect.getMetadata !== 'function') {
  const own = (target: MetadataTarget) => table.get(target);
  const lookup = (key: unknown, target: MetadataTarget): { found: boolean; value: unknown } => {
    for (let t: MetadataTarget | null = target; t; t = Object.getPrototypeOf(t) as MetadataTarget | null) {
      const m = own(t);
      if (m?.has(key)) return { found: true, value: m.get(key) };
    }
    return { found: false, value: undefined };
  };
  reflect.getOwnMetadata = (key, target) => own(target)?.get(key);
  reflect.hasOwnMetadata = (key, target) => own(target)?.has(key) ?? false;
  reflect.getMetadata = (key, target) => lookup(key, target).value;
  reflect.hasMetadata = (key, target) => lookup(key, target).found;
  reflect.defineMetadata = (key, value, target) => {
    let m = own(target);
    if (!m) table.set(target, (m = new Map()));
    m.set(key, value);
  };
}
