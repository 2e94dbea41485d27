/**
 * The shell functions Cairn defines in its remote `sh` (plain POSIX sh and the usual tools; GNU,
 * BusyBox and BSD variants detected once per connection), and the parser of the batched read.
 *
 * A batched read (`__cairn_read K path…`) classifies every path with shell builtins, then reads
 * modes and owners of all of them with one `stat`, link targets with one `readlink` (GNU) or one
 * per link, content hashes with one `sha256sum`, and the bytes of the first K paths' files with
 * one `od`: a handful of processes and one round trip, whatever the number of paths. A path the
 * login user may not reach (a folder above it it may not search) or a file it may not read is
 * reported as such, with builtins too, never as absent (DESIGN §5.9).
 */
import { shellQuote } from '../../lib/shell.ts';
import { factsFrom, PACKAGE_TOOL_DIRS, PACKAGE_TOOLS, parseAddresses, ROOT_INIT } from '../facts.ts';
import { TargetError, type Stat } from '../types.ts';

/**
 * Ends a section of a request's output: a newline and the connection's marker on a line of its
 * own. Requests that answer in several parts (a batched read, facts, users and groups) print it
 * after each, and `splitSections` takes them apart.
 */
export const END_SECTION = String.raw`printf '\n%s\n' "$__n"`;

/**
 * Defines the helper functions and ends with one section: the shell's pid, the umask, `id`'s
 * line and whether timeout(1) exists (parseSetup). Every process the set-up starts is paid on every connection, so
 * it starts one where it can (`$(mv --version)` rather than a pipe into grep; no stat probe where
 * coreutils answered; one `id` for uid and gid).
 */
export const REMOTE_FUNCTIONS = String.raw`
__lcs=${'$'}{LC_ALL+1}; __lc=${'$'}{LC_ALL-}; LC_ALL=C; export LC_ALL
__gnu=; case $(mv --version 2>/dev/null) in *coreutils*) __gnu=1 ;; esac
if [ -n "$__gnu" ] || stat -c %u / >/dev/null 2>&1; then __cairn_stat() { stat -c '%f %u %g %s' -- "$@"; }
else __cairn_stat() { stat -f '%Xp %u %g %z' -- "$@"; }; fi
if command -v sha256sum >/dev/null 2>&1; then __cairn_sha() { sha256sum -- "$@"; }
elif command -v sha256 >/dev/null 2>&1; then __cairn_sha() { sha256 -r -- "$@"; }
else __cairn_sha() { shasum -a 256 -- "$@"; }; fi
if [ -n "$__gnu" ]; then __cairn_links() { readlink -z -- "$@"; }
else __cairn_links() { for __q do printf '%s\0' "$(readlink -- "$__q")"; done; }; fi
__cairn_hidden() {
  __d=$1
  while :; do
    case $__d in */*) __d=${'$'}{__d%/*} ;; *) return 1 ;; esac
    [ -n "$__d" ] || __d=/
    if [ -d "$__d" ]; then [ ! -x "$__d" ]; return; fi
  done
}
__cairn_read() {
  __k=$1; shift; __i=0; __types=; __ex=; __ln=; __rf=; __ct=
  for __p do
    __i=$((__i + 1)); __r="\"\${$__i}\""
    if [ -L "$__p" ]; then __t=l; __ln="$__ln $__r"
    elif [ -f "$__p" ] && [ -r "$__p" ]; then __t=f; __rf="$__rf $__r"; [ "$__i" -le "$__k" ] && __ct="$__ct $__r"
    elif [ -f "$__p" ]; then __t=F
    elif [ -d "$__p" ]; then __t=d
    elif [ -e "$__p" ]; then __t=o
    elif __cairn_hidden "$__p"; then __t=x
    else __t=-; fi
    case $__t in -|x) ;; *) __ex="$__ex $__r" ;; esac
    __types="$__types$__t"
  done
  printf '%s' "$__types"; ${END_SECTION}
  [ -z "$__ex" ] || eval "__cairn_stat $__ex" 2>/dev/null; ${END_SECTION}
  [ -z "$__ln" ] || eval "__cairn_links $__ln" 2>/dev/null; ${END_SECTION}
  [ -z "$__rf" ] || [ -n "$__nosha" ] || eval "__cairn_sha $__rf" 2>/dev/null; ${END_SECTION}
  [ -z "$__ct" ] || eval "od -An -v -tx1 -- $__ct" 2>/dev/null; ${END_SECTION}
}
__cairn_dir() { [ -d "$1" ] || { echo "no such directory: $1"; return 20; }; }
__cairn_check() {
  __vo=$(/bin/sh -c "$1" 2>&1 </dev/null); __vs=$?
  [ $__vs = 0 ] || { printf 'validate exited with %s\n%s\n' $__vs "$__vo"; return 21; }
}
__cairn_prep() {
  { [ "$2" = - ] || chmod "$2" -- "$1"; } && { [ "$3" = - ] || chown "$3" -- "$1" || [ "$4" = 0 ]; } &&
  { [ "$5" != 1 ] || [ -z "$__gnu" ] || sync -- "$1"; } && { [ -z "$6" ] || __cairn_check "$6"; } ||
  { __c=$?; rm -f -- "$1"; return $__c; }
}
__cairn_mv() {
  if [ -n "$__gnu" ]; then mv -f -T -- "$1" "$2"
  elif [ -L "$2" ] && [ -d "$2" ]; then rm -f -- "$2" && mv -f -- "$1" "$2"
  elif [ -d "$2" ]; then echo "$2 is a directory"; false
  else mv -f -- "$1" "$2"; fi
}
__cairn_rename() { __cairn_mv "$1" "$2" || { __c=$?; rm -f -- "$1"; return $__c; }; }
__cairn_commit() { __cairn_prep "$1" "$3" "$4" "$5" "$6" "$7" && __cairn_rename "$1" "$2"; }
__cairn_place() {
  __st=$1; __dd=$2; shift 2
  if [ -n "$__gnu" ]; then
    __i=0; __mv=
    for __b do __i=$((__i + 1)); if [ -e "$__st/$__b" ] || [ -L "$__st/$__b" ]; then __mv="$__mv \"\$__st/\${$__i}\""; fi; done
    [ -z "$__mv" ] || eval "mv -f -- $__mv \"\$__dd/\""
  else
    for __b do if [ -e "$__st/$__b" ] || [ -L "$__st/$__b" ]; then __cairn_mv "$__st/$__b" "$__dd/$__b"; fi; done
  fi
}
__cairn_stage() {
  [ -d "$1" ] || __cairn_dir "$2" && { [ -d "$1" ] || mkdir -m 0700 -- "$1" 2>/dev/null || { printf '%s\n' "$__me"; return 1; }; }
}
echo $$; umask; id; if command -v timeout >/dev/null 2>&1; then echo timeout; else echo -; fi; ${END_SECTION}
`;

export interface ShellSetup {
  /** The remote shell's pid: part of the tag its temp files carry (executor.ts). */
  pid: number;
  /** The shell's umask as it printed it (octal), restored after each write. */
  umask: string;
  uid: number;
  gid: number;
  hasTimeout: boolean;
}

/** Reads the set-up's section: its last four lines (anything a login script printed comes before). */
export function parseSetup(section: Buffer): ShellSetup | undefined {
  const [pid = '', umask = '', id = '', timeout = ''] = section.toString().trim().split('\n').slice(-4);
  // POSIX fixes id's format: "uid=0(root) gid=0(root) groups=…".
  const ids = /^uid=(\d+)\S* gid=(\d+)/.exec(id);
  if (!/^\d+$/.test(pid) || !/^[0-7]{1,4}$/.test(umask) || !ids) return undefined;
  return { pid: Number(pid), umask, uid: Number(ids[1]), gid: Number(ids[2]), hasTimeout: timeout === 'timeout' };
}

export interface PathInfo {
  stat: Stat | null;
  /**
   * The login user may not reach the path (`path`: a folder above it it may not search; `stat`
   * is null) or read the file (`content`: its kind, mode and owner are known, its bytes not).
   */
  denied?: 'path' | 'content';
  link?: string;
  sha256?: string;
  content?: Buffer;
}

const TYPES: Record<number, Stat['type']> = { 0o100000: 'file', 0o040000: 'directory', 0o120000: 'symlink' };

export function splitSections(output: Buffer, nonce: string): Buffer[] {
  const sep = Buffer.from(`\n${nonce}\n`);
  const out: Buffer[] = [];
  let from = 0;
  for (let at = output.indexOf(sep); at >= 0; at = output.indexOf(sep, from)) {
    out.push(output.subarray(from, at));
    from = at + sep.length;
  }
  return out;
}

/**
 * Prints the raw facts (os-release, uname, CPUs, memory, init, package tool, addresses), a section
 * each. Builtins where they do the job, so that a connection starts two processes for its facts
 * (uname, ip) where it started five: os-release is read line by line, and Linux's online CPUs come
 * from sysfs as a list such as "0-3,6" (getconf or sysctl elsewhere).
 *
 * With `root` (a folder holding another system, as a chroot executor converges), the release,
 * init system and package tool are that system's, found by its files (facts.ts: ROOT_INIT, PACKAGE_TOOL_DIRS); kernel,
 * architecture, CPUs, memory, host name and addresses are the running machine's. `offline` reads
 * `/` that way: a shell running inside such a root.
 */
export function factsScript(root?: string, offline = false): string {
  // `/` is the running machine itself, read the live way, unless the shell runs inside a root
  // that is not running (`offline`: the chroot executor's shell, chrooted into it).
  const dir = root?.replace(/\/+$/, '');
  const r = dir ? shellQuote(dir) : '';
  const live = r === '' && !offline;
  const init = live ? String.raw`if [ -d /run/systemd/system ]; then echo systemd; elif [ -d /run/openrc ] || [ -x /sbin/openrc ]; then echo openrc`
    : `if ${ROOT_INIT.systemd.map((p) => `[ -e ${r}${p} ]`).join(' || ')}; then echo systemd; elif [ -e ${r}${ROOT_INIT.openrc} ]; then echo openrc`;
  // In a root, an absolute symlink (apt-get → /etc/alternatives/…) points into the running
  // machine, not the root: a link is enough.
  const packageTool = live ? `for __m in ${PACKAGE_TOOLS.join(' ')}; do command -v $__m >/dev/null 2>&1 && { echo $__m; break; }; done`
    : `for __m in ${PACKAGE_TOOLS.join(' ')}; do for __d in ${PACKAGE_TOOL_DIRS.join(' ')}; do ` +
      `{ [ -e ${r}"$__d/$__m" ] || [ -L ${r}"$__d/$__m" ]; } && { echo $__m; break 2; }; done; done`;
  return String.raw`for __f in ${r}/etc/os-release ${r}/usr/lib/os-release; do
  [ -r "$__f" ] && { while IFS= read -r __l || [ -n "$__l" ]; do printf '%s\n' "$__l"; done <"$__f"; break; }; done; ${END_SECTION}
uname -snrm; ${END_SECTION}
if [ -r /sys/devices/system/cpu/online ] && read -r __c </sys/devices/system/cpu/online; then echo "online $__c"
else getconf _NPROCESSORS_ONLN 2>/dev/null || sysctl -n hw.ncpu 2>/dev/null; fi; ${END_SECTION}
if [ -r /proc/meminfo ]; then while read -r __k __v __u; do [ "$__k" = MemTotal: ] && echo $((__v / 1024)); done </proc/meminfo
else echo $(($(sysctl -n hw.physmem) / 1048576)); fi; ${END_SECTION}
${init}
elif [ "$(uname -s)" = FreeBSD ]; then echo rc.d; else echo unknown; fi; ${END_SECTION}
${packageTool}; ${END_SECTION}
if command -v ip >/dev/null 2>&1; then ip -o addr show 2>/dev/null; elif command -v ifconfig >/dev/null 2>&1; then ifconfig -a 2>/dev/null
else hostname -I 2>/dev/null; fi; ${END_SECTION}`;
}

/** The running machine's facts, read from `/`. */
export const FACTS_SCRIPT = factsScript();

/** A CPU count: a number, or "online LIST" with LIST a sysfs CPU list ("0-3,6" is five). */
export function parseCpuCount(text: string): number {
  const list = /^online\s+(\S+)/.exec(text.trim());
  if (!list) return Number(text.trim()) || 1;
  let count = 0;
  for (const part of list[1]!.split(',')) {
    const [from, to = from] = part.split('-').map(Number);
    if (Number.isInteger(from) && Number.isInteger(to) && to! >= from!) count += to! - from! + 1;
  }
  return count || 1;
}

/** Reads FACTS_SCRIPT's sections. */
export function parseFacts(sections: Buffer[]): Record<string, unknown> {
  const [osRelease = '', uname = '', cpus = '', memory = '', init = '', packageTool = '', addresses = ''] = sections.map(String);
  // `uname -snrm` prints the four in POSIX's fixed order: kernel, host name, release, machine.
  const [kernel = '', hostname = '', kernelRelease = '', machine = ''] = uname.trim().split(/\s+/);
  return factsFrom({
    osRelease, kernel: kernel.toLowerCase(), kernelRelease, machine, hostname,
    cpus: parseCpuCount(cpus), memoryMb: Number(memory.trim()) || 0,
    initSystem: init.trim(), packageTool: packageTool.trim(), addresses: parseAddresses(addresses),
  });
}

/** Prints the user and the group databases (NSS included where getent exists), a section each. */
export const ID_TABLES_SCRIPT = `getent passwd 2>/dev/null || cat /etc/passwd; ${END_SECTION}; getent group 2>/dev/null || cat /etc/group; ${END_SECTION}`;

/** The batched read's answer does not fit the paths asked (they changed while it ran): read again, and after a few tries the node fails. */
export class BatchMismatch extends TargetError {}

/**
 * Parses `__cairn_read`'s output for `paths` (the first `k` asked for content). Throws
 * BatchMismatch when the counts disagree: a path changed between two of the batch's commands.
 */
export function parseBatch(output: Buffer, nonce: string, paths: string[], k: number, hashed = true): Map<string, PathInfo> {
  const parts = splitSections(output, nonce);
  if (parts.length !== 5) throw new BatchMismatch(`batched read: expected 5 sections, got ${parts.length}`);
  const [typesPart, statPart, linkPart, shaPart, odPart] = parts as [Buffer, Buffer, Buffer, Buffer, Buffer];
  const types = typesPart.toString().trim();
  if (types.length !== paths.length) throw new BatchMismatch('batched read: path count differs');
  const statLines = statPart.toString().split('\n').filter(Boolean);
  const links = linkPart.length ? linkPart.toString().split('\0').slice(0, -1) : [];
  const hashes = [...shaPart.toString().matchAll(/^\\?([0-9a-f]{64})[ \t]/gm)].map((m) => m[1]!);
  const hex = odPart.toString().replace(/\s+/g, '');

  const result = new Map<string, PathInfo>();
  let si = 0;
  let li = 0;
  let hi = 0;
  let offset = 0;
  const bytes = Buffer.from(hex, 'hex');
  paths.forEach((path, i) => {
    const t = types[i];
    if (t === '-' || t === 'x') {
      result.set(path, t === 'x' ? { stat: null, denied: 'path' } : { stat: null });
      return;
    }
    const line = statLines[si++];
    if (line === undefined) throw new BatchMismatch('batched read: stat count differs');
    const [modeHex, uid, gid, size] = line.trim().split(/\s+/);
    const raw = parseInt(modeHex!, 16);
    const type = TYPES[raw & 0o170000] ?? 'other';
    const expected = { l: 'symlink', f: 'file', F: 'file', d: 'directory', o: 'other' }[t as 'l' | 'f' | 'F' | 'd' | 'o'];
    if (type !== expected) throw new BatchMismatch(`batched read: ${path} changed kind`);
    const info: PathInfo = { stat: { type, mode: raw & 0o7777, uid: Number(uid), gid: Number(gid), size: Number(size) } };
    if (t === 'F') info.denied = 'content';
    if (t === 'l') {
      const link = links[li++];
      if (link === undefined) throw new BatchMismatch('batched read: link count differs');
      info.link = link;
    }
    if (t === 'f' && hashed) {
      const hash = hashes[hi++];
      if (hash === undefined) throw new BatchMismatch('batched read: hash count differs');
      info.sha256 = hash;
      if (i < k) {
        info.content = bytes.subarray(offset, offset + info.stat!.size);
        offset += info.stat!.size;
      }
    }
    result.set(path, info);
  });
  if (offset !== bytes.length || si !== statLines.length || hi !== hashes.length || li !== links.length) {
    throw new BatchMismatch('batched read: sizes differ');
  }
  return result;
}
