/**
 * Providers of each type (providers.generated.ts, from every type folder's providers.ts), in the
 * order they are tried: the first suitable one wins. No schema is loaded here: a run needs none.
 */
import { generatedProviders } from './providers.generated.ts';
import { ApplyError, type Provider } from './type.ts';

export function providersOf(type: string): readonly Provider[] {
  return generatedProviders[type] ?? [];
}

/** `provider:` if given, else the first suitable one; ApplyError (the node fails) saying why when none fits. */
export function selectProvider(type: string, facts: Record<string, unknown>, os: Record<string, unknown>, wanted?: string): Provider {
  const candidates = providersOf(type);
  if (candidates.length === 0) throw new ApplyError(`no provider for ${type} yet`);
  if (wanted) {
    const named = candidates.find((p) => p.name === wanted);
    if (!named) throw new ApplyError(`no provider '${wanted}' for ${type} (have: ${candidates.map((p) => p.name).join(', ')})`);
    return named;
  }
  const fit = candidates.find((p) => p.suitable(facts, os));
  if (!fit) throw new ApplyError(`no provider for ${type} suits this target`);
  return fit;
}
