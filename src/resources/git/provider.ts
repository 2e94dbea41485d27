import type { RunResult, Stat } from '../../executors/types.ts';
import { toolError } from '../commands.ts';
import { ownership } from '../posix.ts';
import { defineProvider, ApplyError, type Current, type Desired, type ProviderContext } from '../type.ts';
import type { gitType } from './type.ts';

type GitAttributes = Desired<typeof gitType>;

/** Where Cairn records the commit it last checked out: what is not on it, a remote or a tag is a local commit. */
const CHECKOUT_REF = 'refs/cairn/checkout';

/** What a revision names on the remote. A commit is looked for locally (`commit` undefined: not fetched yet). */
export type Wanted =
  | { kind: 'branch'; name: string; commit: string }
  | { kind: 'tag'; name: string; commit: string }
  | { kind: 'commit'; name: string; commit?: string };

/** What is at the path now. */
interface Checkout {
  head?: string;
  origin?: string;
  /** `git status --porcelain` lines: modified, staged and untracked files. */
  dirty: string[];
  /** Commits on HEAD that no remote branch, tag or earlier checkout by Cairn has. */
  local: string[];
}

const HEX = /^[0-9a-f]{7,40}$/i;

function git(ctx: ProviderContext, desired: GitAttributes, args: string[], where: 'in' | 'outside' = 'in'): Promise<RunResult> {
  const path = desired.path;
  // safe.directory: reading a checkout another user owns (the owner just changed) is not refused.
  const argv = where === 'in' ? ['git', '-C', path, '-c', `safe.directory=${path}`, ...args] : ['git', ...args];
  return ctx.exec.run(argv, {
    // Never a prompt for credentials nobody can answer: a failure instead.
    env: { GIT_TERMINAL_PROMPT: '0' },
    cwd: '/',
    ...(desired.owner !== undefined ? { user: desired.owner } : {}),
  });
}

async function mustGit(ctx: ProviderContext, desired: GitAttributes, args: string[], where: 'in' | 'outside' = 'in'): Promise<string> {
  const r = await git(ctx, desired, args, where);
  if (r.code !== 0 || r.timedOut) throw toolError(`git ${args.join(' ')}`, r);
  return r.stdout;
}

/** The commit (or branch) ls-remote lines name for `ref`, peeled for an annotated tag. */
export function parseLsRemote(stdout: string): { refs: Map<string, string>; headBranch?: string } {
  const refs = new Map<string, string>();
  let headBranch: string | undefined;
  for (const line of stdout.split('\n')) {
    const symref = /^ref: refs\/heads\/(\S+)\tHEAD$/.exec(line);
    if (symref) headBranch = symref[1];
    const m = /^([0-9a-f]{40,64})\t(\S+)$/.exec(line);
    if (m) refs.set(m[2]!, m[1]!);
  }
  return { refs, ...(headBranch !== undefined ? { headBranch } : {}) };
}

/** What the revision names on the remote now: asks the remote (ls-remote), which changes nothing. */
async function resolveRevision(ctx: ProviderContext, desired: GitAttributes): Promise<Wanted> {
  const repository = desired.repository!;
  const rev = desired.revision;
  if (rev === 'HEAD') {
    const { refs, headBranch } = parseLsRemote(await mustGit(ctx, desired, ['ls-remote', '--symref', repository, 'HEAD'], 'outside'));
    const commit = refs.get('HEAD');
    if (!headBranch || !commit) throw new ApplyError(`${repository} has no default branch (its HEAD names none): give revision: <branch, tag or commit>`);
    return { kind: 'branch', name: headBranch, commit };
  }
  const patterns = [`refs/heads/${rev}`, `refs/tags/${rev}`, `refs/tags/${rev}^{}`];
  const { refs } = parseLsRemote(await mustGit(ctx, desired, ['ls-remote', repository, ...patterns], 'outside'));
  const branch = refs.get(`refs/heads/${rev}`);
  if (branch) return { kind: 'branch', name: rev, commit: branch };
  const tag = refs.get(`refs/tags/${rev}^{}`) ?? refs.get(`refs/tags/${rev}`);
  if (tag) return { kind: 'tag', name: rev, commit: tag };
  if (HEX.test(rev)) return { kind: 'commit', name: rev.toLowerCase() };
  throw new ApplyError(`revision '${rev}' is not a branch or tag of ${repository} (nor a commit id)`);
}

/** The checkout at the path, or undefined when there is none (no folder, or an empty one). */
async function inspect(ctx: ProviderContext, desired: GitAttributes): Promise<Checkout | 'not a checkout' | undefined> {
  const gitDir = await git(ctx, desired, ['rev-parse', '--git-dir']);
  if (gitDir.code !== 0 || gitDir.stdout.trim() !== '.git') {
    const listed = await ctx.exec.run(['ls', '-A', desired.path]);
    return listed.code === 0 && listed.stdout.trim() === '' ? undefined : 'not a checkout';
  }
  const head = await git(ctx, desired, ['rev-parse', '--verify', '-q', 'HEAD']);
  const origin = await git(ctx, desired, ['config', '--get', 'remote.origin.url']);
  // --no-optional-locks: reading does not refresh the index file.
  const status = await mustGit(ctx, desired, ['--no-optional-locks', 'status', '--porcelain']);
  const local = head.code === 0
    ? await mustGit(ctx, desired, ['rev-list', '--abbrev-commit', 'HEAD', '--not', '--remotes', '--tags', '--glob=refs/cairn/*'])
    : '';
  return {
    ...(head.code === 0 ? { head: head.stdout.trim() } : {}),
    ...(origin.code === 0 ? { origin: origin.stdout.trim() } : {}),
    dirty: status.split('\n').filter((l) => l !== ''),
    local: local.split('\n').filter((l) => l !== ''),
  };
}

/** Whether HEAD is where the revision says, and the commit it should be at when known. */
async function target(ctx: ProviderContext, desired: GitAttributes, checkout: Checkout): Promise<{ wanted: Wanted; there: boolean }> {
  const wanted = await resolveRevision(ctx, desired);
  if (wanted.kind === 'commit') {
    const known = await git(ctx, desired, ['rev-parse', '--verify', '-q', `${wanted.name}^{commit}`]);
    if (known.code === 0) wanted.commit = known.stdout.trim();
  }
  const there = checkout.head !== undefined && (wanted.commit !== undefined ? checkout.head === wanted.commit : false);
  return { wanted, there };
}

function short(commit: string | undefined): string {
  return commit === undefined ? 'none' : commit.slice(0, 12);
}

/** What stands in the way of moving HEAD, as the failure says it. */
function localChanges(path: string, checkout: Checkout): string | undefined {
  if (checkout.dirty.length === 0 && checkout.local.length === 0) return undefined;
  const lines: string[] = [];
  if (checkout.dirty.length > 0) lines.push(`changed files (git status --porcelain):`, ...checkout.dirty.slice(0, 20).map((l) => `  ${l}`));
  if (checkout.dirty.length > 20) lines.push(`  … and ${checkout.dirty.length - 20} more`);
  if (checkout.local.length > 0) lines.push(`${checkout.local.length} local commit(s) not on the remote: ${checkout.local.slice(0, 5).join(' ')}`);
  return `${path} has local changes; not touching it (force: true discards them):\n${lines.join('\n')}`;
}

async function chownTree(ctx: ProviderContext, desired: GitAttributes): Promise<void> {
  if (desired.owner === undefined && desired.group === undefined) return;
  const spec = desired.owner !== undefined ? `${desired.owner}${desired.group !== undefined ? `:${desired.group}` : ''}` : `:${desired.group!}`;
  const r = await ctx.exec.run(['chown', '-R', spec, desired.path]);
  if (r.code !== 0) throw toolError(`chown -R ${spec} ${desired.path}`, r);
}

/** Fetches what the revision needs from origin; returns the commit to check out. */
async function fetch(ctx: ProviderContext, desired: GitAttributes, wanted: Wanted): Promise<string> {
  const depth = desired.depth !== undefined ? [`--depth=${desired.depth}`] : [];
  if (wanted.kind === 'branch') {
    await mustGit(ctx, desired, ['fetch', '-q', ...depth, 'origin', `+refs/heads/${wanted.name}:refs/remotes/origin/${wanted.name}`]);
    return (await mustGit(ctx, desired, ['rev-parse', '--verify', `refs/remotes/origin/${wanted.name}^{commit}`])).trim();
  }
  if (wanted.kind === 'tag') {
    await mustGit(ctx, desired, ['fetch', '-q', ...depth, 'origin', `+refs/tags/${wanted.name}:refs/tags/${wanted.name}`]);
    return (await mustGit(ctx, desired, ['rev-parse', '--verify', `refs/tags/${wanted.name}^{commit}`])).trim();
  }
  const have = async () => {
    const r = await git(ctx, desired, ['rev-parse', '--verify', '-q', `${wanted.name}^{commit}`]);
    return r.code === 0 ? r.stdout.trim() : undefined;
  };
  let found = await have();
  if (found === undefined && depth.length === 0) {
    // The branches and tags hold it, mostly: the ordinary fetch, which any server answers.
    await mustGit(ctx, desired, ['fetch', '-q', '--tags', 'origin']);
    found = await have();
  }
  if (found === undefined && HEX.test(wanted.name) && wanted.name.length === 40) {
    // A commit no branch or tag holds (or a shallow fetch): asked for by id, which servers may refuse.
    const r = await git(ctx, desired, ['fetch', '-q', ...depth, 'origin', wanted.name]);
    if (r.code === 0) found = await have();
  }
  if (found === undefined) throw new ApplyError(`revision '${wanted.name}' is not a branch, tag or commit of ${desired.repository!}`);
  return found;
}

/**
 * Brings the checkout to the revision: fetch, then check out (a branch as a local branch that
 * tracks origin's, a tag or commit detached). Returns whether HEAD moved.
 */
async function move(ctx: ProviderContext, desired: GitAttributes, checkout: Checkout, wanted: Wanted, discard: boolean): Promise<boolean> {
  const commit = await fetch(ctx, desired, wanted);
  if (discard) {
    // force: local edits and untracked files go (ignored ones stay: git status does not list them either).
    await mustGit(ctx, desired, ['reset', '-q', '--hard']);
    await mustGit(ctx, desired, ['clean', '-q', '-f', '-d']);
  }
  if (wanted.kind === 'branch') {
    await mustGit(ctx, desired, ['checkout', '-q', ...(discard ? ['--force'] : []), '-B', wanted.name, '--track', `origin/${wanted.name}`]);
  } else {
    await mustGit(ctx, desired, ['checkout', '-q', ...(discard ? ['--force'] : []), '--detach', commit]);
  }
  await mustGit(ctx, desired, ['update-ref', CHECKOUT_REF, 'HEAD']);
  return checkout.head !== commit;
}

/**
 * A new checkout: an empty folder the owner owns, `git init`, origin, then what `move` does. The
 * revision is resolved first (a repository that cannot be reached creates nothing), and a clone
 * that fails half way is taken back: the folder as it was (absent, or empty).
 */
async function clone(ctx: ProviderContext, desired: GitAttributes, before: Stat | undefined): Promise<void> {
  const path = desired.path;
  const wanted = await resolveRevision(ctx, desired);
  await ctx.exec.mkdir(path, { parents: true });
  try {
    await chownTree(ctx, desired);
    await mustGit(ctx, desired, ['init', '-q']);
    await mustGit(ctx, desired, ['remote', 'add', 'origin', desired.repository!]);
    await move(ctx, desired, { dirty: [], local: [] }, wanted, false);
  } catch (err) {
    await ctx.exec.remove(path);
    if (before) {
      await ctx.exec.mkdir(path, { mode: before.mode });
      await ctx.exec.chown(path, String(before.uid), String(before.gid));
    }
    throw err;
  }
}

/** Reads and, when the checkout must move or be created, converges it; the outcome for apply and refresh. */
async function converge(ctx: ProviderContext, desired: GitAttributes, refetch = false): Promise<{ changed: boolean; reason: string }> {
  const path = desired.path;
  const stat = await ctx.exec.stat(path);
  if (stat && stat.type !== 'directory') throw new ApplyError(`${path} is a ${stat.type}, not a git checkout; remove it first`);
  const checkout = stat ? await inspect(ctx, desired) : undefined;
  if (checkout === 'not a checkout') throw new ApplyError(`${path} is a folder with files in it but not a git checkout; remove it or choose another path`);
  if (!checkout) {
    await clone(ctx, desired, stat);
    return { changed: true, reason: 'cloned' };
  }
  const currentOwner = stat ? await ownership(ctx, desired, stat.uid, stat.gid) : {};
  const { wanted, there } = await target(ctx, desired, checkout);
  const blocked = localChanges(path, checkout);
  // Refused before anything is touched, whatever else differs.
  if (blocked !== undefined && !desired.force && (!there || checkout.origin !== desired.repository)) throw new ApplyError(blocked);
  let changed = false;
  if ((desired.owner !== undefined && currentOwner.owner !== desired.owner) || (desired.group !== undefined && currentOwner.group !== desired.group)) {
    await chownTree(ctx, desired);
    changed = true;
  }
  if (checkout.origin !== desired.repository) {
    await mustGit(ctx, desired, ['remote', ...(checkout.origin === undefined ? ['add'] : ['set-url']), 'origin', desired.repository!]);
    changed = true;
  }
  const discard = desired.force && blocked !== undefined;
  if (!there || discard) {
    const moved = await move(ctx, desired, checkout, wanted, discard);
    if (moved || discard) changed = true;
    // Files git wrote as the owner are the owner's; a group is set on them afterwards.
    if (changed && desired.group !== undefined) await chownTree(ctx, desired);
    return { changed, reason: moved ? 'HEAD moved' : `HEAD already at ${short(checkout.head)}` };
  }
  // A notification asks for a fetch even when HEAD is where it should be: origin's refs catch up.
  if (refetch) await fetch(ctx, desired, wanted);
  return { changed, reason: `${refetch ? 'fetched; ' : ''}HEAD already at ${short(checkout.head)}` };
}

export const gitProvider = defineProvider<typeof gitType>({
  type: 'git',
  name: 'git',
  suitable: () => true,

  async read(ctx, desired) {
    const path = desired.path;
    const stat = await ctx.exec.stat(path);
    if (!stat) return undefined;
    if (stat.type !== 'directory') return { path, ensure: 'present', kind: stat.type };
    const checkout = await inspect(ctx, desired);
    if (checkout === 'not a checkout') return { path, ensure: 'present', kind: 'folder that is not a git checkout' };
    if (!checkout) return undefined;
    const current: Record<string, unknown> = {
      path, ensure: 'present', ...(await ownership(ctx, desired, stat.uid, stat.gid)),
      head: checkout.head, ...(checkout.origin !== undefined ? { repository: checkout.origin } : {}),
      dirty: checkout.dirty, local: checkout.local,
    };
    if (desired.ensure === 'absent') return current;
    const { wanted, there } = await target(ctx, desired, checkout);
    current.wanted = wanted.commit;
    // With force, local changes are a difference too: the next apply discards them.
    const discard = desired.force && localChanges(path, checkout) !== undefined;
    current.revision = there && !discard ? desired.revision : `${short(checkout.head)}${discard ? ' with local changes' : ''}`;
    return current;
  },

  async apply(ctx, action, desired, current) {
    if (action === 'destroy') {
      if (current?.kind !== undefined) throw new ApplyError(`${desired.path} is a ${String(current.kind)}; not removing it`);
      await ctx.exec.remove(desired.path);
      return;
    }
    const outcome = await converge(ctx, desired);
    return outcome.changed ? { refreshed: true } : { changed: false, reason: outcome.reason };
  },

  async refresh(ctx, desired) {
    if (desired.ensure === 'absent') return { changed: false, reason: 'absent' };
    const outcome = await converge(ctx, desired, true);
    if (!outcome.changed) return { changed: false, reason: outcome.reason };
  },

  /** What a plan with --diff says: the clone, or HEAD's move from the commit it is at to the one it would be at. */
  diff(desired, current: Current<typeof gitType>) {
    if (desired.ensure === 'absent') return `remove ${desired.path}\n`;
    if (!current) return `clone ${desired.repository!} (${desired.revision}) into ${desired.path}\n`;
    const lines: string[] = [];
    if (current.repository !== desired.repository) lines.push(`origin ${String(current.repository ?? 'none')} → ${desired.repository!}`);
    if (current.revision !== desired.revision) {
      const wanted = typeof current.wanted === 'string' ? short(current.wanted) : `${desired.revision} (not fetched yet)`;
      lines.push(`HEAD ${short(current.head as string | undefined)} → ${wanted} (${desired.revision})`);
      const dirty = Array.isArray(current.dirty) ? current.dirty.length : 0;
      const local = Array.isArray(current.local) ? current.local.length : 0;
      if (dirty + local > 0) {
        lines.push(desired.force
          ? `discarding ${dirty} changed file(s) and ${local} local commit(s) (force: true)`
          : `refused: ${dirty} changed file(s) and ${local} local commit(s) (force: false)`);
      }
    }
    return lines.length > 0 ? `${lines.join('\n')}\n` : undefined;
  },
});
