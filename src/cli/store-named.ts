/**
 * Whether a store is named at all, cheaply (no YAML parser): commands that only use a store when
 * one is configured (`apply` keeping its reports) ask this first, and store-commands.ts reads the
 * settings properly when the answer is yes. The places are those of `configuredStore`.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

/** The store config read when no `--store-config` is given. */
export const SYSTEM_STORE_CONFIG = '/etc/cairn/store.yaml';

export function storeNamed(flags: { store?: string; storeConfig?: string; site?: string }): boolean {
  if (flags.store || flags.storeConfig || process.env.CAIRN_STORE || existsSync(SYSTEM_STORE_CONFIG)) return true;
  if (!flags.site) return false;
  try {
    // A top-level `store:` in cairn.yaml, seen in the text.
    return /^store:[ \t]*\S/m.test(readFileSync(join(flags.site, 'cairn.yaml'), 'utf8'));
  } catch {
    return false;
  }
}
