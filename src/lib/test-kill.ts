/**
 * A test hook, not a feature: crash tests kill a run at a chosen instant with it. Set
 * `CAIRN_TEST_KILL_AT=<point>[:<detail>][@<n>]` and the process sends itself SIGKILL the n-th time
 * (default: the first) it reaches `point` (with `detail`, when given). This is the one place the
 * variable is read; the points are named where they are:
 *
 * - `before-rename:<base name>`, `after-rename:<base name>`: the local executor's atomic write,
 *   its temp file written, before and after it is renamed into place;
 * - `before-state-write:<file>`, `after-state-write:<file>`: a state file (`pending.json`,
 *   `metadata.json`) about to be, or just, written;
 * - `after-change:<ref>`: a node's apply returned, before anything about it is recorded;
 * - `after-handler:<ref>`: a handler ran, before its pending notification is removed.
 *
 * Unset (always, outside tests), every call is one comparison.
 */
interface KillSpec {
  point: string;
  detail?: string;
  nth: number;
}

function parse(text: string | undefined): KillSpec | undefined {
  const m = text ? /^([a-z-]+)(?::(.+?))?(?:@(\d+))?$/.exec(text) : null;
  if (!m) return undefined;
  return { point: m[1]!, ...(m[2] !== undefined ? { detail: m[2] } : {}), nth: m[3] ? Number(m[3]) : 1 };
}

const spec = parse(process.env.CAIRN_TEST_KILL_AT);
let reached = 0;

/** Kills this process here if the test hook names this point (see above); otherwise nothing. */
export function killPoint(point: string, detail?: string): void {
  if (!spec || spec.point !== point || (spec.detail !== undefined && spec.detail !== detail)) return;
  if (++reached === spec.nth) process.kill(process.pid, 'SIGKILL');
}
