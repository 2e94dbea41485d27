/**
 * The package index a target's package manager keeps (apt's lists, apk's APKINDEX): a
 * `package_repository` node that changed says so here, and the next package install on that
 * target refreshes the index before it installs, so a package in the same run can come from the
 * repository just added. Kept per executor (one per target and run), like the managers' own
 * "updated once this run" memory.
 */
import type { Executor } from '../executors/types.ts';

const changed = new WeakSet<Executor>();

/** A repository of this target's package manager was added, changed or removed. */
export function packageIndexChanged(exec: Executor): void {
  changed.add(exec);
}

/** Whether a repository changed since the index was last refreshed; the caller refreshes it now. */
export function takePackageIndexChange(exec: Executor): boolean {
  const was = changed.has(exec);
  changed.delete(exec);
  return was;
}
