/** Providers of each type, in the order they are tried (the first suitable one wins). */
import { posixDirectory } from './directory/provider.ts';
import { shellExec } from './exec/provider.ts';
import { posixFile } from './file/provider.ts';
import { posixLine } from './line/provider.ts';
import { posixSymlink } from './symlink/provider.ts';
import { engineTransition } from './transition/provider.ts';
import { packageProviders } from './package/providers.ts';
import { serviceProviders } from './service/providers.ts';
import { userProviders } from './user/providers.ts';
import { groupProviders } from './group/providers.ts';
import { authorizedkeyProviders } from './authorized_key/providers.ts';
import { cronProviders } from './cron/providers.ts';
import { hostnameProviders } from './hostname/providers.ts';
import { sysctlProviders } from './sysctl/providers.ts';
import type { Provider } from './type.ts';

const providers: readonly Provider[] = [
  posixFile, posixDirectory, posixSymlink, posixLine, shellExec, engineTransition,
  ...packageProviders, ...serviceProviders, ...userProviders, ...groupProviders, ...authorizedkeyProviders,
  ...cronProviders, ...hostnameProviders, ...sysctlProviders,
];

export function providersOf(type: string): Provider[] {
  return providers.filter((p) => p.type === type);
}

/** `provider:` if given, else the first suitable one; undefined with the reason when none fits. */
export function selectProvider(type: string, facts: Record<string, unknown>, os: Record<string, unknown>, wanted?: string): Provider | string {
  const candidates = providersOf(type);
  if (candidates.length === 0) return `no provider for ${type} yet`;
  if (wanted) return candidates.find((p) => p.name === wanted) ?? `no provider '${wanted}' for ${type} (have: ${candidates.map((p) => p.name).join(', ')})`;
  return candidates.find((p) => p.suitable(facts, os)) ?? `no provider for ${type} suits this target`;
}
