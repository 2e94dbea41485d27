/**
 * The run lock over the shell protocol (DESIGN §5.11): the same STATE_DIR/lock.d as a local run
 * makes (../lock-dir.ts), made with mkdir on the far side. Its holder is the remote shell itself
 * (its pid and the far side's host name), so whether the holder is gone can always be checked
 * where it ran, with `kill -0` — whichever workstation started it; the workstation and its pid
 * are recorded too, for the message. The shell releases the lock when it exits (an EXIT trap,
 * also on a hang-up or a lost connection), so a run that dies leaves no lock behind, and a normal
 * end costs no request of its own; the temp file of a write it was in the middle of goes with it
 * (executor.ts, inFlight). A shell killed outright leaves both: the run that takes the lock over
 * removes that shell's temp files by the tag its holder records.
 */
import { shellQuote } from '../../lib/shell.ts';
import { LOCK_DIR, parseHolder } from '../lock-dir.ts';
import type { LockAttempt, LockClaim } from '../types.ts';

/**
 * `__cairn_lock DIR STARTED BY TEMPS` prints `taken` (then the holder it took over, if any: its
 * line and its `temps` line, perhaps empty), `held yes|no|unknown` then the holder's line, or
 * `unwritable` then why; status 0 only when taken.
 * Takeover is guarded by mkdir of lock.d/takeover, as locally. A message of `kill -0` that says
 * "not permitted" is a live process of another user.
 */
const LOCK_FUNCTIONS = String.raw`
__cairn_unlock() {
  [ -z "$__cairn_t" ] || eval "rm -rf -- $__cairn_t"
  [ -z "$__cairn_cd" ] || rm -rf -- "$__cairn_cd"
  [ -n "$__cairn_lockdir" ] || return 0
  __u=; IFS= read -r __u <"$__cairn_lockdir/holder" 2>/dev/null
  case $__u in "$$ "*) rm -rf -- "$__cairn_lockdir" ;; esac
  __cairn_lockdir=
}
__cairn_lock() {
  __ld=$1/lock.d; __took=; __me=$(uname -n); __mine=${"${"}5:-}
  [ -d "$1" ] || __e=$(mkdir -p -m 0700 -- "$1" 2>&1) || { echo unwritable; printf '%s\n' "$__e"; return 1; }
  for __try in 1 2; do
    if __e=$(mkdir -m 0700 -- "$__ld" 2>&1); then
      printf '%s %s %s %s\ntemps %s\n' "$$" "$__me" "$2" "$3" "$4" >"$__ld/holder"
      __cairn_lockdir=$__ld
      trap __cairn_unlock EXIT; trap 'exit 129' HUP; trap 'exit 130' INT; trap 'exit 141' PIPE; trap 'exit 143' TERM
      echo taken; [ -z "$__took" ] || printf '%s\n%s\n' "$__took" "$__tookt"
      return 0
    fi
    [ -d "$__ld" ] || { echo unwritable; printf '%s\n' "$__e"; return 1; }
    __h=; __ht=; { IFS= read -r __h; IFS= read -r __ht; } 2>/dev/null <"$__ld/holder"
    __alive=yes
    if [ -n "$__h" ]; then
      __p=${"${"}__h%% *}; __r=${"${"}__h#* }
      if [ -n "$__mine" ] && [ "$__ht" = "temps $__mine" ]; then __alive=no
      elif [ "${"${"}__r%% *}" != "$__me" ]; then __alive=unknown
      elif ! kill -0 "$__p" 2>/dev/null; then case $(kill -0 "$__p" 2>&1) in *ermit*) ;; *) __alive=no ;; esac
      fi
    fi
    if [ $__alive = no ] && [ $__try = 1 ] && mkdir -- "$__ld/takeover" 2>/dev/null; then
      __hn=; IFS= read -r __hn <"$__ld/holder" 2>/dev/null
      if [ "$__hn" = "$__h" ]; then rm -rf -- "$__ld"; __took=$__h; __tookt=$__ht; continue; fi
      rmdir -- "$__ld/takeover"
    fi
    echo "held $__alive"; printf '%s\n' "$__h"; return 1
  done
}`;

/**
 * The request that tries the lock, recording `temps` (what this session's temp files carry) in
 * the holder; `then` runs after it in the same round trip, only when it was taken. `mine`: the
 * temps tag of this session's shell before the target rebooted (unique to it), whose entry is
 * taken over as its own.
 */
export function lockRequest(stateDir: string, claim: LockClaim, temps: string, endSection: string, then = '', mine?: string): string {
  const args = [stateDir, claim.started, claim.by, temps, ...(mine !== undefined ? [mine] : [])].map(shellQuote).join(' ');
  return `${LOCK_FUNCTIONS}\n__cairn_lock ${args}; __l=$?; ${endSection}${then ? `\n[ $__l != 0 ] || { ${then}\n}` : ''}`;
}

export function parseLockReply(section: string, stateDir: string): LockAttempt {
  const [first = '', second = '', third = ''] = section.replace(/^\n+/, '').split('\n');
  if (first === 'taken') {
    const tookOver = second ? parseHolder(`${second}\n${third}`) : undefined;
    return { state: 'taken', ...(tookOver ? { tookOver } : {}) };
  }
  if (first === 'unwritable') return { state: 'unwritable', reason: second };
  const alive = /^held (yes|no|unknown)$/.exec(first)?.[1] as 'yes' | 'no' | 'unknown' | undefined;
  if (!alive) throw new Error(`the run lock's reply is not understood: ${section.slice(0, 200)}`);
  const holder = parseHolder(second);
  return { state: 'held', ...(holder ? { holder } : {}), alive, path: `${stateDir.replace(/\/+$/, '')}/${LOCK_DIR}` };
}
