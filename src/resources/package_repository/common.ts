/** What the package_repository providers share. */
import { ApplyError } from '../type.ts';
import type { RepositoryAttributes } from './key.ts';

/** apt's attributes given to another manager's repository: an error, never silently dropped. */
export function refuseAptOnly(desired: RepositoryAttributes, manager: string): void {
  const given = [desired.suites !== undefined && 'suites', desired.components.length > 0 && 'components', desired.architectures.length > 0 && 'architectures']
    .filter((a): a is string => typeof a === 'string');
  if (given.length) throw new ApplyError(`${given.join(', ')} ${given.length > 1 ? 'are' : 'is'} apt's: this target's packages come from ${manager}`);
}

/** The apt-only attributes as a current state reports them when they are not in play. */
export function aptOnlyAsDesired(desired: RepositoryAttributes): Record<string, unknown> {
  return { suites: desired.suites, components: desired.components, architectures: desired.architectures };
}
