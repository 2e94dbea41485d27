// The tree snapshot of bench/snapshot.sh (a copy of ../shared/bench/peers/tools/snapshot.sh, kept
// here so the tests need nothing outside the repository: a line per entry: kind, mode, path,
// content hash or link target), with the root shown as $ROOT: two trees are the same exactly when
// their snapshots are. Shared by bench/run.mjs and the export tests.
import { execFileSync } from 'node:child_process';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const SNAPSHOT_TOOL = resolve(dirname(fileURLToPath(import.meta.url)), 'snapshot.sh');

export function snapshot(root) {
  return execFileSync('sh', [SNAPSHOT_TOOL, root], { encoding: 'utf8', maxBuffer: 1 << 26 }).replaceAll(root, '$ROOT');
}
