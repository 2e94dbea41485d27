/**
 * The shell functions the providers' `shell` fragments call (DESIGN §11): POSIX sh that dash and
 * BusyBox ash both run, each a small tool a person would write once at the top of a script (an
 * atomic file edit, a user's database entry, a service's state). An exported script defines the
 * ones its fragments use, and what those use in turn: `preludeFor(fragments)`.
 *
 * The functions return non-zero on failure and say why on stderr, so a fragment chains them with
 * `&&`; they work with or without `set -e` (no command whose failure is expected stands alone).
 * Values reach them as arguments, and awk reads them from the environment (`-v` would expand
 * backslashes).
 */
import { shellQuote } from '../lib/shell.ts';

/** Each function's definition, by name. */
export const SHELL_FUNCTIONS: Readonly<Record<string, string>> = {
  // ---- files ------------------------------------------------------------------------------------

  cairn_edit: `# cairn_edit FILE MODE OWNER COMMAND...: FILE replaced atomically (temp + rename) by COMMAND's output,
# COMMAND reading FILE (nothing when FILE is missing); an existing FILE keeps its mode and owner, a
# new one gets MODE and OWNER (user:group, or empty); FILE (and its folder) is left alone when nothing
# changes. COMMAND is a filter: it may run twice.
cairn_edit() {
  local file="$1" mode="$2" owner="$3" src="$1" tmp="$1.cairn-tmp.$$"
  shift 3
  if [ -e "$file" ]; then
    mode=$(stat -c %a "$file") && owner=$(stat -c %u:%g "$file") || return 1
  else
    src=/dev/null
  fi
  # Compared first, so a file already as asked is not touched, nor is its folder.
  if [ -e "$file" ] && "$@" < "$src" | cmp -s - "$file"; then return 0; fi
  if ! "$@" < "$src" > "$tmp"; then rm -f "$tmp"; return 1; fi
  if chmod "$mode" "$tmp" && { [ -z "$owner" ] || chown "$owner" "$tmp"; } && mv -f "$tmp" "$file"; then return 0; fi
  rm -f "$tmp"
  return 1
}`,

  // ---- users and groups -------------------------------------------------------------------------

  cairn_getent: `# cairn_getent passwd|group KEY: the entry by name or number (getent, or the files where there is none).
cairn_getent() {
  if command -v getent >/dev/null 2>&1; then getent "$1" "$2"; return; fi
  CAIRN_KEY=$2 awk -F: '$1 == ENVIRON["CAIRN_KEY"] || (ENVIRON["CAIRN_KEY"] ~ /^[0-9]+$/ && $3 == ENVIRON["CAIRN_KEY"]) { print; f = 1; exit } END { exit !f }' "/etc/$1"
}`,

  cairn_user_is: `# cairn_user_is USER FIELD VALUE: USER exists and its passwd FIELD (3 uid, 4 gid, 5 comment, 6 home, 7 shell) is VALUE.
cairn_user_is() {
  local entry
  entry=$(cairn_getent passwd "$1") || return 1
  [ "$(printf '%s\\n' "$entry" | cut -d: -f"$2")" = "$3" ]
}`,

  cairn_user_gid_is: `# cairn_user_gid_is USER GROUP: USER's primary group is the group named GROUP.
cairn_user_gid_is() {
  local gid
  gid=$(cairn_getent group "$2" | cut -d: -f3)
  [ -n "$gid" ] && cairn_user_is "$1" 4 "$gid"
}`,

  cairn_group_gid_is: `# cairn_group_gid_is GROUP GID: GROUP exists with that gid.
cairn_group_gid_is() {
  local entry
  entry=$(cairn_getent group "$1") || return 1
  [ "$(printf '%s\\n' "$entry" | cut -d: -f3)" = "$2" ]
}`,

  cairn_member_of: `# cairn_member_of USER: the groups that list USER as a member (its supplementary groups), sorted.
cairn_member_of() {
  { if command -v getent >/dev/null 2>&1; then getent group; else cat /etc/group; fi; } |
    CAIRN_USER=$1 awk -F: '{ n = split($4, m, ","); for (i = 1; i <= n; i++) if (m[i] == ENVIRON["CAIRN_USER"]) { print $1; break } }' | sort -u
}`,

  cairn_group_names: `# cairn_group_names GROUP...: each group's name (a number the database knows as its name), sorted.
cairn_group_names() {
  local g entry
  for g in "$@"; do
    if entry=$(cairn_getent group "$g"); then printf '%s\\n' "\${entry%%:*}"; else printf '%s\\n' "$g"; fi
  done | sort -u
}`,

  cairn_user_groups_are: `# cairn_user_groups_are USER GROUP...: USER's supplementary groups are exactly GROUP...
cairn_user_groups_are() {
  local user="$1"
  shift
  [ "$(cairn_member_of "$user")" = "$(cairn_group_names "$@")" ]
}`,

  cairn_busybox_groups: `# cairn_busybox_groups USER GROUP...: USER joins and leaves groups (addgroup, delgroup) until its
# supplementary groups are exactly GROUP...
cairn_busybox_groups() {
  local user="$1" want g
  shift
  want=$(cairn_group_names "$@")
  for g in $want; do
    cairn_member_of "$user" | grep -qxF -- "$g" || addgroup "$user" "$g" || return 1
  done
  for g in $(cairn_member_of "$user"); do
    printf '%s\\n' "$want" | grep -qxF -- "$g" || delgroup "$user" "$g" || return 1
  done
}`,

  cairn_passwd_set: `# cairn_passwd_set USER FIELD VALUE: sets one field of USER's line in /etc/passwd (5 comment, 6 home,
# 7 shell), atomically: what BusyBox's own tools do, as it has no usermod.
cairn_passwd_set() {
  cairn_edit /etc/passwd 644 '' env CAIRN_USER="$1" CAIRN_FIELD="$2" CAIRN_VALUE="$3" \\
    awk -F: -v OFS=: '$1 == ENVIRON["CAIRN_USER"] && NF >= 7 { $(ENVIRON["CAIRN_FIELD"] + 0) = ENVIRON["CAIRN_VALUE"] } { print }'
}`,

  cairn_refuse: `# cairn_refuse MESSAGE: fails, saying why.
cairn_refuse() {
  printf '%s\\n' "$1" >&2
  return 1
}`,

  // ---- authorized keys --------------------------------------------------------------------------

  cairn_home: `# cairn_home USER: USER's home, without trailing slashes.
cairn_home() {
  local entry home
  entry=$(cairn_getent passwd "$1") || return 1
  home=$(printf '%s\\n' "$entry" | cut -d: -f6)
  while case $home in */) true ;; *) false ;; esac; do home=\${home%/}; done
  printf '%s\\n' "$home"
}`,

  cairn_key_lines: `# cairn_key_lines find|edit TYPE BODY [LINE]: reads an authorized_keys file. find: prints the options of
# the first line holding the key (type and body; its comment is no part of it), fails when none does.
# edit: prints the file with LINE in place of the key's first line (appended when no line holds it;
# later lines holding it stay); LINE empty: without the key's lines. Options are what precedes the key, up to white space outside
# double quotes (sshd(8)).
cairn_key_lines() {
  CAIRN_MODE=$1 CAIRN_TYPE=$2 CAIRN_BODY=$3 CAIRN_LINE=\${4:-} awk '
    function split_options(line,   i, c, q) {
      q = 0
      for (i = 1; i <= length(line); i++) {
        c = substr(line, i, 1)
        if (c == "\\\\" && q) i++
        else if (c == "\\"") q = !q
        else if (!q && (c == " " || c == "\\t")) { OPTS = substr(line, 1, i - 1); REST = substr(line, i); return 1 }
      }
      return 0
    }
    function holds(line,   n, f) {
      sub(/^[ \\t]+/, "", line); sub(/[ \\t\\r]+$/, "", line)
      if (line == "" || substr(line, 1, 1) == "#") return 0
      n = split(line, f, /[ \\t]+/)
      if (n >= 2 && f[1] == ENVIRON["CAIRN_TYPE"] && f[2] == ENVIRON["CAIRN_BODY"]) { OPTS = ""; return 1 }
      if (!split_options(line)) return 0
      sub(/^[ \\t]+/, "", REST)
      n = split(REST, f, /[ \\t]+/)
      return n >= 2 && f[1] == ENVIRON["CAIRN_TYPE"] && f[2] == ENVIRON["CAIRN_BODY"]
    }
    ENVIRON["CAIRN_MODE"] == "find" { if (holds($0)) { print OPTS; found = 1; exit } next }
    holds($0) { if (ENVIRON["CAIRN_LINE"] == "") next; if (!done) { print ENVIRON["CAIRN_LINE"]; done = 1; next } }
    { print }
    END {
      if (ENVIRON["CAIRN_MODE"] == "find") exit !found
      if (ENVIRON["CAIRN_LINE"] != "" && !done) print ENVIRON["CAIRN_LINE"]
    }'
}`,

  cairn_key_is: `# cairn_key_is USER TYPE BODY [OPTIONS]: USER's authorized_keys holds the key (with exactly OPTIONS when given).
cairn_key_is() {
  local home options
  home=$(cairn_home "$1") || return 1
  [ -f "$home/.ssh/authorized_keys" ] || return 1
  options=$(cairn_key_lines find "$2" "$3" < "$home/.ssh/authorized_keys") || return 1
  [ $# -lt 4 ] || [ "$options" = "$4" ]
}`,

  cairn_authorized_key: `# cairn_authorized_key USER TYPE BODY [LINE]: LINE in place of the key's line in USER's authorized_keys
# (appended when missing; the file made 0600 and ~/.ssh 0700, owned by the user, when missing);
# no LINE: the key's lines removed.
cairn_authorized_key() {
  local entry home owner file
  if ! entry=$(cairn_getent passwd "$1"); then
    [ -z "\${4:-}" ] && return 0
    cairn_refuse "no such user: $1"
    return 1
  fi
  home=$(cairn_home "$1") || return 1
  owner=$(printf '%s\\n' "$entry" | cut -d: -f3,4)
  file=$home/.ssh/authorized_keys
  if [ -z "\${4:-}" ]; then [ -e "$file" ] || return 0; fi
  if [ -e "$file" ] && [ ! -f "$file" ]; then cairn_refuse "$file is not a file; not editing it"; return 1; fi
  if [ ! -d "$home/.ssh" ]; then
    [ -d "$home" ] || { cairn_refuse "the home of $1, $home, does not exist"; return 1; }
    mkdir -m 700 "$home/.ssh" && chown "$owner" "$home/.ssh" || return 1
  fi
  cairn_edit "$file" 600 "$owner" cairn_key_lines edit "$2" "$3" "\${4:-}"
}`,

  // ---- cron -------------------------------------------------------------------------------------

  cairn_crontab: `# cairn_crontab USER: USER's crontab (nothing when USER has none yet).
cairn_crontab() {
  local err
  if ! err=$(crontab -l -u "$1" 2>&1 >/dev/null); then
    case $err in
      *"no crontab for"* | *"can't open '$1': No such file or directory"*) return 0 ;;
    esac
    printf '%s\\n' "$err" >&2
    return 1
  fi
  crontab -l -u "$1"
}`,

  cairn_cron_lines: `# cairn_cron_lines find|edit NAME [LINE]: reads a crontab. find: prints the job line below the first
# "# cairn: NAME" marker (nothing when it has none). edit: prints the crontab with NAME's entry set to
# LINE (in place of its first marker, else at the end), or removed when LINE is empty; duplicates of
# the entry go, every other line stays.
cairn_cron_lines() {
  CAIRN_MODE=$1 CAIRN_NAME=$2 CAIRN_LINE=\${3:-} awk '
    function marker(l) { return index(l, "# cairn: ") == 1 }
    function named(l) { if (!marker(l)) return 0; l = substr(l, 10); sub(/[ \\t\\r]+$/, "", l); return l == ENVIRON["CAIRN_NAME"] }
    function job(l,   n, f) {
      if (l ~ /^[ \\t]*@[A-Za-z0-9_]+[ \\t]+[^ \\t]/) return 1
      n = split(l, f)
      return n >= 6 && f[1] !~ /^#/ && f[1] !~ /=/
    }
    { line[NR] = $0 }
    END {
      for (i = 1; i <= NR; i++) {
        if (!named(line[i])) { if (ENVIRON["CAIRN_MODE"] == "edit") print line[i]; continue }
        isjob = i < NR && !marker(line[i + 1]) && job(line[i + 1])
        if (ENVIRON["CAIRN_MODE"] == "find") { if (isjob) print line[i + 1]; exit }
        if (ENVIRON["CAIRN_LINE"] != "" && !done) { print line[i]; print ENVIRON["CAIRN_LINE"]; done = 1 }
        if (isjob) i++
      }
      if (ENVIRON["CAIRN_MODE"] == "edit" && ENVIRON["CAIRN_LINE"] != "" && !done) { print "# cairn: " ENVIRON["CAIRN_NAME"]; print ENVIRON["CAIRN_LINE"] }
    }'
}`,

  cairn_cron_is: `# cairn_cron_is USER NAME LINE: the job below NAME's marker in USER's crontab is LINE (LINE empty: it has none).
cairn_cron_is() {
  local tab
  tab=$(cairn_crontab "$1") || return 1
  [ "$(printf '%s\\n' "$tab" | cairn_cron_lines find "$2")" = "$3" ]
}`,

  cairn_cron_set: `# cairn_cron_set USER NAME [LINE]: USER's crontab with NAME's entry set to LINE, or removed without one.
cairn_cron_set() {
  local tab
  tab=$(cairn_crontab "$1") || return 1
  tab=$({ [ -z "$tab" ] || printf '%s\\n' "$tab"; } | cairn_cron_lines edit "$2" "\${3:-}") || return 1
  { [ -z "$tab" ] || printf '%s\\n' "$tab"; } | crontab -u "$1" -
}`,

  // ---- host name --------------------------------------------------------------------------------

  cairn_etc_hostname: `# cairn_etc_hostname: the name in /etc/hostname (its first line that is no comment).
cairn_etc_hostname() {
  [ -r /etc/hostname ] || return 0
  awk '{ sub(/^[ \\t]+/, ""); sub(/[ \\t\\r]+$/, "") } $0 != "" && substr($0, 1, 1) != "#" { print; exit }' /etc/hostname
}`,

  cairn_hostname_is: `# cairn_hostname_is NAME: the running host name and the one in /etc/hostname are NAME.
cairn_hostname_is() {
  [ "$(uname -n)" = "$1" ] && [ "$(cairn_etc_hostname)" = "$1" ]
}`,

  cairn_set_hostname: `# cairn_set_hostname NAME: /etc/hostname and the running host name set to NAME, each when it differs.
cairn_set_hostname() {
  { [ "$(cairn_etc_hostname)" = "$1" ] || cairn_edit /etc/hostname 644 '' printf '%s\\n' "$1"; } &&
    { [ "$(uname -n)" = "$1" ] || hostname "$1"; }
}`,

  // ---- sysctl -----------------------------------------------------------------------------------

  cairn_sysctl_is: `# cairn_sysctl_is KEY VALUE: the kernel's KEY is VALUE (runs of white space as one space).
cairn_sysctl_is() {
  local value
  value=$(sysctl -n "$1") || return 1
  [ "$(printf '%s\\n' "$value" | awk '{ $1 = $1; s = s (NR > 1 ? " " : "") $0 } END { print s }')" = "$2" ]
}`,

  cairn_sysctl_conf: `# cairn_sysctl_conf find|edit KEY [LINE [HEADER]]: reads a sysctl.conf file. find: prints the value the last
# line of KEY gives (white space runs as one space), fails when none does. edit: prints it with KEY's
# line replaced by LINE (or appended; HEADER first in a file that had no lines), or removed without LINE.
cairn_sysctl_conf() {
  CAIRN_MODE=$1 CAIRN_KEY=$2 CAIRN_LINE=\${3:-} CAIRN_HEADER=\${4:-} awk '
    function key(l,   k) {
      sub(/^[ \\t]*-?[ \\t]*/, "", l)
      if (l ~ /^[#;=]/ || index(l, "=") == 0) return ""
      k = substr(l, 1, index(l, "=") - 1); sub(/[ \\t]+$/, "", k); gsub("/", ".", k)
      VALUE = substr(l, index(l, "=") + 1)
      return k
    }
    key($0) == ENVIRON["CAIRN_KEY"] {
      if (ENVIRON["CAIRN_MODE"] == "find") { value = VALUE; found = 1; next }
      if (ENVIRON["CAIRN_LINE"] != "" && !done) { print ENVIRON["CAIRN_LINE"]; done = 1 }
      next
    }
    ENVIRON["CAIRN_MODE"] == "edit" { print }
    END {
      if (ENVIRON["CAIRN_MODE"] == "find") { if (!found) exit 1; $0 = value; $1 = $1; print; exit }
      if (NR == 0) printf "%s", ENVIRON["CAIRN_HEADER"]
      if (ENVIRON["CAIRN_LINE"] != "" && !done) print ENVIRON["CAIRN_LINE"]
    }'
}`,

  cairn_sysctl_kept: `# cairn_sysctl_kept FILE KEY VALUE: FILE keeps VALUE for KEY (VALUE empty: FILE keeps no value for it).
cairn_sysctl_kept() {
  local kept
  if [ ! -f "$1" ] || ! kept=$(cairn_sysctl_conf find "$2" < "$1"); then [ -z "$3" ]; return; fi
  [ -n "$3" ] && [ "$kept" = "$3" ]
}`,

  // ---- packages ---------------------------------------------------------------------------------

  cairn_dpkg_version: `# cairn_dpkg_version PACKAGE: its installed version; fails when it is not installed.
cairn_dpkg_version() {
  dpkg-query -W -f='\${Status}\\t\${Version}\\n' "$1" 2>/dev/null |
    awk -F '\\t' '$1 ~ / (installed|triggers-pending|triggers-awaited)$/ { v = $2 } END { if (v == "") exit 1; print v }'
}`,

  cairn_apt_held: `# cairn_apt_held PACKAGE: apt holds it (apt-mark hold).
cairn_apt_held() {
  apt-mark showhold | grep -qxF -- "$1"
}`,

  cairn_apt_latest: `# cairn_apt_latest PACKAGE: installed, at the version the repositories offer.
cairn_apt_latest() {
  env LC_ALL=C apt-cache policy "$1" | awk '$1 == "Installed:" { i = $2 } $1 == "Candidate:" { c = $2 } END { exit !(i != "" && i != "(none)" && i == c) }'
}`,

  cairn_apt_get: `# cairn_apt_get ARGS...: apt-get without prompts; configuration files changed here keep the local version.
cairn_apt_get() {
  env DEBIAN_FRONTEND=noninteractive APT_LISTCHANGES_FRONTEND=none LC_ALL=C apt-get -y -q -o DPkg::Lock::Timeout=300 \\
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "$@"
}`,

  cairn_apt_install: `# cairn_apt_install ARGS...: apt-get install ARGS; once more after apt-get update when it fails (lists missing or stale).
cairn_apt_install() {
  cairn_apt_get install "$@" || { cairn_apt_get update && cairn_apt_get install "$@"; }
}`,

  cairn_apk_version: `# cairn_apk_version PACKAGE: its installed version (with its release); fails when it is not installed.
cairn_apk_version() {
  apk info -v 2>/dev/null | CAIRN_NAME=$1 awk '
    index($0, ENVIRON["CAIRN_NAME"] "-") == 1 { r = substr($0, length(ENVIRON["CAIRN_NAME"]) + 2); if (r ~ /^[^-]+-r[0-9]+$/) v = r }
    END { if (v == "") exit 1; print v }'
}`,

  cairn_apk_held: `# cairn_apk_held PACKAGE: the world file pins it to one version (name=version, name@tag=version).
cairn_apk_held() {
  [ -r /etc/apk/world ] && CAIRN_NAME=$1 awk '{
    for (i = 1; i <= NF; i++) {
      e = $i; n = ENVIRON["CAIRN_NAME"]
      if (index(e, n "@") == 1) e = n substr(e, index(e, "="))
      if (index(e, n "=") == 1 && substr(e, length(n) + 2, 1) !~ /^[=<>~]?$/) f = 1
    }
  } END { exit !f }' /etc/apk/world
}`,

  cairn_apk_latest: `# cairn_apk_latest PACKAGE: installed, and the repositories offer nothing newer.
cairn_apk_latest() {
  cairn_apk_version "$1" >/dev/null && ! apk version -l '<' "$1" 2>/dev/null | awk '$2 == "<" { f = 1 } END { exit !f }'
}`,

  cairn_apk_add: `# cairn_apk_add ARGS...: apk add ARGS; once more after apk update when it fails (no index yet).
cairn_apk_add() {
  apk add --no-progress "$@" || { apk update --no-progress && apk add --no-progress "$@"; }
}`,

  cairn_apk_hold: `# cairn_apk_hold PACKAGE: pinned at the version installed (as apk spells it, with its release).
cairn_apk_hold() {
  local version
  version=$(cairn_apk_version "$1") || { cairn_refuse "$1 is not installed: there is no version to hold it at"; return 1; }
  apk add --no-progress "$1=$version"
}`,

  // ---- services ---------------------------------------------------------------------------------

  cairn_systemd_known: `# cairn_systemd_known UNIT: systemd has the unit loaded (or masked).
cairn_systemd_known() {
  case $(systemctl show -p LoadState --value -- "$1" 2>/dev/null) in loaded | masked) return 0 ;; esac
  return 1
}`,

  cairn_systemd_running: `# cairn_systemd_running UNIT: active, reloading, or on its way up (not waiting to be restarted after a crash).
cairn_systemd_running() {
  case $(systemctl show -p ActiveState --value -- "$1" 2>/dev/null) in
    active | reloading | refreshing) return 0 ;;
    activating) [ "$(systemctl show -p SubState --value -- "$1")" != auto-restart ] ;;
    *) return 1 ;;
  esac
}`,

  cairn_systemd_enabled: `# cairn_systemd_enabled UNIT yes|no: the unit starts at boot (yes) or does not (no); a unit that
# cannot be enabled itself (static, indirect, generated) is either.
cairn_systemd_enabled() {
  case $(systemctl show -p UnitFileState --value -- "$1" 2>/dev/null) in
    enabled) [ "$2" = yes ] ;;
    enabled-runtime | disabled | linked | linked-runtime | masked | masked-runtime | bad) [ "$2" = no ] ;;
    *) return 0 ;;
  esac
}`,

  cairn_systemd_unit: `# cairn_systemd_unit UNIT: systemd knows the unit, after a daemon-reload if need be (a unit file just
# written); fails in systemd's words when it does not.
cairn_systemd_unit() {
  cairn_systemd_known "$1" && return 0
  systemctl daemon-reload && cairn_systemd_known "$1" && return 0
  systemctl status --no-pager --lines=0 -- "$1" >&2 || true
  return 1
}`,

  cairn_systemd_do: `# cairn_systemd_do start|restart|reload UNIT: does it (a daemon-reload first when the unit file changed),
# then makes sure the unit runs a second later; its journal when it does not.
cairn_systemd_do() {
  if [ "$(systemctl show -p NeedDaemonReload --value -- "$2")" = yes ]; then systemctl daemon-reload || return 1; fi
  if systemctl "$1" -- "$2" && sleep 1 && cairn_systemd_running "$2"; then return 0; fi
  if [ "$(systemctl show -p Type --value -- "$2")" = oneshot ] && [ "$(systemctl show -p Result --value -- "$2")" = success ]; then return 0; fi
  journalctl -u "$2" -n 20 --no-pager -q >&2 || true
  cairn_refuse "$2 is not running after $1"
}`,

  cairn_openrc_running: `# cairn_openrc_running SERVICE: started, starting, or inactive (started, waiting for something).
cairn_openrc_running() {
  local code=0
  rc-service "$1" status >/dev/null 2>&1 || code=$?
  case $code in 0 | 8 | 16) return 0 ;; esac
  return 1
}`,

  cairn_openrc_levels: `# cairn_openrc_levels SERVICE: the runlevels it starts in (shutdown is none of them).
cairn_openrc_levels() {
  rc-update show | CAIRN_NAME=$1 awk '$1 == ENVIRON["CAIRN_NAME"] && $2 == "|" { for (i = 3; i <= NF; i++) if ($i != "shutdown") print $i }'
}`,

  cairn_openrc_service: `# cairn_openrc_service SERVICE: OpenRC has an init script for it; fails in its words when not.
cairn_openrc_service() {
  rc-service --exists "$1" && return 0
  rc-service "$1" status >&2 || true
  return 1
}`,

  cairn_openrc_do: `# cairn_openrc_do start|restart|reload SERVICE: does it (a crashed service, still marked started, is
# restarted), then makes sure it runs a second later.
cairn_openrc_do() {
  local verb="$1" code=0
  rc-service "$2" status >/dev/null 2>&1 || code=$?
  case $code in 32 | 64) [ "$verb" != start ] || verb=restart ;; esac
  rc-service "$2" "$verb" && sleep 1 && cairn_openrc_running "$2" && return 0
  rc-service "$2" status >&2 || true
  cairn_refuse "$2 is not running after $verb"
}`,
};

function namesIn(text: string): Set<string> {
  const found = new Set<string>();
  for (const word of text.match(/\bcairn_[a-z_]+\b/g) ?? []) if (word in SHELL_FUNCTIONS) found.add(word);
  return found;
}

/**
 * The definitions `fragments` need: the functions they call and the functions those call, in
 * the order SHELL_FUNCTIONS lists them (each defined once, before a script calls anything).
 */
export function preludeFor(fragments: readonly string[]): string {
  const needed = new Set<string>();
  const queue = [...namesIn(fragments.join('\n'))];
  while (queue.length) {
    const name = queue.pop()!;
    if (needed.has(name)) continue;
    needed.add(name);
    for (const used of namesIn(SHELL_FUNCTIONS[name]!)) if (!needed.has(used)) queue.push(used);
  }
  return Object.keys(SHELL_FUNCTIONS).filter((n) => needed.has(n)).map((n) => `${SHELL_FUNCTIONS[n]!}\n`).join('\n');
}

/** All the functions, for a script that wants them all (and for their syntax checks). */
export const SHELL_PRELUDE = Object.keys(SHELL_FUNCTIONS).map((n) => `${SHELL_FUNCTIONS[n]!}\n`).join('\n');

/** A fragment that fails with `message` on stderr (a node the target cannot converge, and why). */
export function shellRefusal(message: string): string {
  return `cairn_refuse ${shellQuote(message)}`;
}
