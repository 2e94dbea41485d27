/** Providers of each type, in the order they are tried (the first suitable one wins). */
import { posixDirectory } from './directory/provider.ts';
import { shellExec } from './exec/provider.ts';
import { posixFile } from './file/provider.ts';
import { posixLine } from './line/provider.ts';
import { posixSymlink } from './symlink/provider.ts';
import { engineTransition } from './transition/provider.ts';
import type { Provider } from './type.ts';

const providers: readonly Provider[] = [posixFile, posixDirectory, posixSymlink, posixLine, shellExec, engineTransition];

export function providersOf(type: string): Provider[] {
  return providers.filter((p) => p.type === type);
}

/** `provider:` if given, else the first suitable one; undefined with the reason when none fits. */
export function selectProvider(type: string, facts: Record<string, unknown>, wanted?: string): Provider | string {
  const candidates = providersOf(type);
  if (candidates.length === 0) return `no provider for ${type} yet`;
  if (wanted) return candidates.find((p) => p.name === wanted) ?? `no provider '${wanted}' for ${type} (have: ${candidates.map((p) => p.name).join(', ')})`;
  return candidates.find((p) => p.suitable(facts)) ?? `no provider for ${type} suits this target`;
}
