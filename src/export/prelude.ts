/**
 * The helpers every exported script starts with (DESIGN §11): options, the report of each node,
 * the counts and summary, handler flushes, and what providers' fragments use (ShellProvider in
 * resources/type.ts documents them). POSIX sh: dash and busybox ash run it.
 */
export const PRELUDE = String.raw`
cairn_mode=apply cairn_diff=0 cairn_fail_fast=0
for cairn_arg in "$@"; do
  case $cairn_arg in
    --check) cairn_mode=check ;;
    --diff) cairn_diff=1 ;;
    --fail-fast) cairn_fail_fast=1 ;;
    -h|--help) echo "usage: $0 [--check] [--diff] [--fail-fast]"; exit 0 ;;
    *) echo "$0: unknown option $cairn_arg (usage: $0 [--check] [--diff] [--fail-fast])" >&2; exit 2 ;;
  esac
done
cairn_n_changed=0 cairn_n_unchanged=0 cairn_n_failed=0 cairn_n_skipped=0
cairn_stopped= cairn_flushing= cairn_failed=
cairn_nl='
'
# Commands' output, in a temp file made when first needed (cairn_mklog: by cairn_load, which
# defines the nodes' functions, or a commit): a converged run forks nothing for it.
cairn_log=
cairn_mklog() { cairn_log=$(mktemp) || { echo "$0: cannot make a temp file" >&2; exit 3; }; }
# Staged writes (cairn_stage): the stage folders made and not yet committed, one a line.
cairn_stages= cairn_grp= cairn_q= cairn_sk= cairn_sz= cairn_lk= cairn_deferred= cairn_i=
trap '[ -z "$cairn_log" ] || rm -f "$cairn_log"; [ -z "$cairn_stages" ] || cairn_unstage' EXIT
trap 'exit 130' INT TERM

# Every variable the shell holds costs each later command (dash walks them all to build an exec's
# environment, and a lookup walks its hash chain), so a node's status (s_I) is kept only for the
# nodes whose status something reads (cairn_kept, which script.ts writes), and what a group or a
# commit keeps per node is unset once used.
# cairn_result I STATUS ACTION REASON [ERROR]: records a node's result and prints its line.
cairn_result() {
  case $cairn_kept in *" $1 "*) eval "s_$1=\$2" ;; esac
  # x_I: I failed or was skipped for a failed requisite, which skips what requires it; cairn_failed
  # lists those nodes and xr_I keeps I's name for the message.
  case $2:$4 in failed:*|skipped:dependency\ failed*) eval "x_$1=1 xr_$1=\$cairn_ref"; cairn_failed="$cairn_failed $1 " ;; esac
  case $2 in
    changed|would-change) cairn_n_changed=$((cairn_n_changed + 1)) ;;
    unchanged) cairn_n_unchanged=$((cairn_n_unchanged + 1)) ;;
    failed) cairn_n_failed=$((cairn_n_failed + 1)); [ $cairn_fail_fast = 0 ] || cairn_stopped=$cairn_ref ;;
    skipped) cairn_n_skipped=$((cairn_n_skipped + 1)) ;;
  esac
  # Padded as cairn's own report lines (cli/report.ts), with builtins only: no fork per node.
  case $2 in
    failed) _line="FAILED       $cairn_ref" ;;
    would-change) _line="would change $cairn_ref" ;;
    changed) _line="changed      $cairn_ref" ;;
    skipped) _line="skipped      $cairn_ref" ;;
    *) _line="unchanged    $cairn_ref" ;;
  esac
  [ "$3" = none ] || _line="$_line ($3)"
  [ -z "$4" ] || _line="$_line — $4"
  # A group with a write staged prints its lines at its commit, in their order.
  if [ -n "$cairn_grp" ]; then eval "ql_$1=\$_line qe_$1=\${5:-}"; cairn_q="$cairn_q $1"; return; fi
  cairn_print "$_line" "${"${"}5:-}"
}
# cairn_print LINE [ERROR]: a report line, and the error's lines indented below it. A commit's
# lines (cairn_out set) are printed with one printf.
cairn_print() {
  if [ -n "$cairn_out" ]; then cairn_out="$cairn_out$1$cairn_nl"; [ -z "$2" ] || { printf '%s' "${"${"}cairn_out#.}"; cairn_out=.; }
  else printf '%s\n' "$1"; fi
  [ -z "$2" ] || printf '%s\n' "$2" | sed 's/^/             /'
}
cairn_out=

# cairn_go I REQ…: whether node I gets its turn: the run goes on (no fail-fast stop) and none of
# the requisites REQ it needs failed; if not, its result says why.
cairn_go() {
  cairn_skip=
  if [ -n "$cairn_stopped" ]; then cairn_stop "$1"; return 1; fi
  [ -n "$cairn_failed" ] || return 0
  _g=$1; shift
  for _d in "$@"; do
    case $cairn_failed in *" $_d "*) eval "_r=\$xr_$_d"; cairn_result "$_g" skipped none "dependency failed: $_r"; return 1 ;; esac
  done
}
# cairn_ok I: node I (cairn_ref) was found in sync.
cairn_ok() {
  case $cairn_kept in *" $1 "*) eval "s_$1=unchanged" ;; esac
  cairn_n_unchanged=$((cairn_n_unchanged + 1))
  if [ -n "$cairn_grp" ]; then eval "ql_$1=\"unchanged    \$cairn_ref\" qe_$1="; cairn_q="$cairn_q $1"; return; fi
  printf 'unchanged    %s\n' "$cairn_ref"
}

# cairn_file_is PATH TEXT: a regular file holding exactly TEXT (which ends in a newline), no fork.
cairn_file_is() {
  [ -f "$1" ] && [ ! -L "$1" ] || return 1
  _c= _l=
  while IFS= read -r _l; do _c="$_c$_l$cairn_nl"; done < "$1"
  [ -z "$_l" ] && [ "$_c" = "$2" ]
}
cairn_sha256_is() {
  [ -f "$1" ] && [ ! -L "$1" ] || return 1
  _h=$(sha256sum < "$1") || return 1
  [ "${"${"}_h%% *}" = "$2" ]
}
cairn_b64() { base64 -d; }
# cairn_octal 0644 → 644, as stat -c %a prints it.
cairn_octal() {
  _m=$1
  while :; do case $_m in 0?*) _m=${"${"}_m#0} ;; *) break ;; esac; done
  printf '%s' "$_m"
}
# cairn_attrs_ok PATH MODE OWNER GROUP: the managed ones (non-empty) are as asked.
cairn_attrs_ok() {
  [ -n "$2$3$4" ] || return 0
  _st=$(stat -c '%a %u %U %g %G' "$1" 2>/dev/null) || return 1
  set -- "$@" $_st
  if [ -n "$2" ] && [ "$(cairn_octal "$2")" != "$5" ]; then return 1; fi
  case $3 in '') ;; *[!0-9]*) [ "$3" = "$7" ] || return 1 ;; *) [ "$3" = "$6" ] || return 1 ;; esac
  case $4 in '') ;; *[!0-9]*) [ "$4" = "$9" ] || return 1 ;; *) [ "$4" = "$8" ] || return 1 ;; esac
  return 0
}
# cairn_attrs PATH MODE OWNER GROUP: brings the managed ones to what is asked.
cairn_attrs() {
  cairn_attrs_ok "$@" && return 0
  [ -z "$2" ] || chmod "$2" "$1" || return 1
  [ -z "$3$4" ] || chown "$3${"${"}4:+:$4}" "$1" || return 1
}
# cairn_put PATH MODE OWNER GROUP BACKUP [TEXT]: writes TEXT (else stdin) atomically: a temp file in
# the same folder, then a rename; cairn_validate (if set) runs on the temp file as $1 first. Like
# cairn's own writes (executors/unsynced-writes.ts), new content that replaces a file is synced
# to disk before the rename (sync FILE: fsync); a path that held nothing has nothing to lose.
cairn_put() {
  _d=${"${"}1%/*}; [ -n "$_d" ] || _d=/
  if [ ! -d "$_d" ]; then echo "the directory $_d does not exist (declare it with a directory part and require it)"; return 1; fi
  _t="$_d/.${"${"}1##*/}.cairn-$$" _v=${"${"}cairn_validate:-}
  cairn_validate=
  # A file it replaces keeps its mode and owner unless they are managed: cp -p makes the temp file
  # with them, and writing into it keeps them.
  if [ -z "$2$3$4" ] && [ -f "$1" ]; then cp -p "$1" "$_t" 2>/dev/null || rm -f "$_t"; fi
  if [ $# -ge 6 ]; then printf '%s' "$6" > "$_t" || { rm -f "$_t"; return 1; }
  else cat > "$_t" || { rm -f "$_t"; return 1; }; fi
  if [ -n "$_v" ]; then
    if ! _o=$(sh -c "$_v" cairn-validate "$_t" 2>&1); then
      rm -f "$_t"; printf 'validate refused the new content (%s left as it was)\n%s\n' "$1" "$_o" | tail -n 12; return 1
    fi
  fi
  if [ -n "$2" ]; then chmod "$2" "$_t" || { rm -f "$_t"; return 1; }; fi
  if [ -n "$3$4" ]; then chown "$3${"${"}4:+:$4}" "$_t" || { rm -f "$_t"; return 1; }; fi
  if [ -e "$1" ]; then
    if [ "$5" = 1 ] && [ -f "$1" ]; then cp "$1" "$1.cairn-bak" || { rm -f "$_t"; return 1; }; fi
    sync "$_t" 2>/dev/null
  fi
  mv -f "$_t" "$1" || { rm -f "$_t"; return 1; }
}
# Staged writes (ShellProvider.stage; script.ts groups the nodes): a group of file and line parts
# with no command between them writes its new files into a stage folder beside their targets
# (FOLDER/.cairn-stage.PID), and its commit renames them into place with one mv a folder: mv
# renames each file by rename(2), so each is replaced atomically as cairn_put's would be. The
# group's report lines wait for the commit, so that a file that could not be put in place is
# reported failed, in its order.
#
# A folder the group makes (cairn_sdir) is made inside its parent's stage, and what the group puts
# in it goes straight there (sz_K: the folder is new, so nothing of it is replaced): the parent's
# one mv puts the whole new tree in place, and an interrupted run leaves none of it. sz_K names
# the stage that carries it (the one whose mv moves it), whose sx_K lists what it carries, a line
# "NODE STAGED-PATH" each, for the report of a failed mv.
#
# cairn_stage K PATH MODE OWNER GROUP [TEXT]: PATH's new content (TEXT, else stdin) staged in its
# folder's stage (K numbers the folder); cairn_put's rules for mode and owner.
cairn_stage() {
  _k=$1; shift
  # With --diff, each node's diff comes just before its report line: nothing waits for a commit.
  if [ $cairn_diff = 1 ]; then cairn_unstaged "$@"; return; fi
  eval "_s=\${ss_$_k:-} _z=\${sz_$_k:-}"
  if [ -z "$_s" ]; then
    _d=${"${"}1%/*}; [ -n "$_d" ] || _d=/
    if [ ! -d "$_d" ]; then echo "the directory $_d does not exist (declare it with a directory part and require it)"; return 1; fi
    _s="${"${"}_d%/}/.cairn-stage.$$"
    # This run's stage of the folder (made with it, or kept from a group before), else a new one;
    # one that cannot be made (or a name already taken): the file is written on its own.
    case $cairn_nl$cairn_stages in
      *"$cairn_nl$_s$cairn_nl"*) [ -d "$_s" ] || mkdir "$_s" 2>/dev/null || _s= ;;
      *) if mkdir "$_s" 2>/dev/null; then cairn_stages="$cairn_stages$_s$cairn_nl"; else _s=; fi ;;
    esac
    if [ -z "$_s" ]; then cairn_unstaged "$@"; return; fi
    eval "ss_$_k=\$_s sd_$_k=\$_d"; cairn_sk="$cairn_sk $_k"
  fi
  _n=${"${"}1##*/}; _t="$_s/$_n"
  if [ -z "$2$3$4" ] && [ -f "$1" ]; then cp -p "$1" "$_t" 2>/dev/null || rm -f "$_t"; fi
  if [ $# -ge 5 ]; then printf '%s' "$5" > "$_t" || { rm -f "$_t"; return 1; }
  elif [ -n "$cairn_in64" ]; then cairn_b64 > "$_t" || { rm -f "$_t"; return 1; }
  else cat > "$_t" || { rm -f "$_t"; return 1; }; fi
  if [ -n "$2" ] && ! cairn_umask_gives "$2" "$_t"; then chmod "$2" "$_t" || { rm -f "$_t"; return 1; }; fi
  if [ -n "$3$4" ]; then chown "$3${"${"}4:+:$4}" "$_t" || { rm -f "$_t"; return 1; }; fi
  if [ -n "$_z" ]; then eval "sx_$_z=\"\${sx_$_z:-}$cairn_i \$_t\$cairn_nl\""
  else
    # New content that replaces a file is synced before the rename (cairn_put's rule), at the commit.
    [ ! -e "$1" ] || eval "sr_$_k=\"\${sr_$_k:-}\$_n\$cairn_nl\""
    eval "sn_$_k=\"\${sn_$_k:-}\$_n\$cairn_nl\" si_$_k=\"\${si_$_k:-} $cairn_i\""
  fi
  cairn_grp=1 cairn_deferred=1
}
# cairn_sdir I K KP PATH MODE OWNER GROUP: node I's new directory PATH made in the stage of its
# parent (folder K), as folder KP's stage for the rest of the group (see above). Fails (1), having
# made nothing, when it cannot be: --diff, a dry run, something at PATH, no parent folder.
cairn_sdir() {
  [ $cairn_diff = 0 ] && [ $cairn_mode = apply ] || return 1
  if [ -e "$4" ] || [ -L "$4" ]; then return 1; fi
  eval "_s=\${ss_$2:-} _z=\${sz_$2:-}"
  _n=${"${"}4##*/}
  if [ -n "$_s" ]; then mkdir "$_s/$_n" 2>/dev/null || return 1
  else
    _d=${"${"}4%/*}; [ -n "$_d" ] || _d=/
    [ -d "$_d" ] || return 1
    _s="${"${"}_d%/}/.cairn-stage.$$"
    case $cairn_nl$cairn_stages in
      *"$cairn_nl$_s$cairn_nl"*) { [ -d "$_s" ] || mkdir "$_s"; } 2>/dev/null && mkdir "$_s/$_n" 2>/dev/null || return 1 ;;
      # The stage and the folder in one mkdir; a stage name already taken is not this run's.
      *) if ! mkdir "$_s" "$_s/$_n" 2>/dev/null; then [ ! -d "$_s/$_n" ] || rmdir "$_s/$_n" "$_s" 2>/dev/null; return 1; fi
         cairn_stages="$cairn_stages$_s$cairn_nl" ;;
    esac
    eval "ss_$2=\$_s sd_$2=\$_d"; cairn_sk="$cairn_sk $2"
  fi
  if [ -n "$5$6$7" ] && ! cairn_attrs "$_s/$_n" "$5" "$6" "$7"; then rm -rf "$_s/$_n"; return 1; fi
  if [ -n "$_z" ]; then eval "sx_$_z=\"\${sx_$_z:-}$1 \$_s/\$_n\$cairn_nl\""
  else eval "sn_$2=\"\${sn_$2:-}\$_n\$cairn_nl\" si_$2=\"\${si_$2:-} $1\""; fi
  eval "ss_$3=\$_s/\$_n sd_$3=\$4 sz_$3=\${_z:-$2}"; cairn_sz="$cairn_sz $3"
  cairn_grp=1 cairn_deferred=1
}
# cairn_slink I K PATH TARGET: node I's new link made in folder K's stage when K is a folder the
# group makes (sz_K); fails (1) otherwise, and the link is made in place.
cairn_slink() {
  eval "_z=\${sz_$2:-}"
  [ -n "$_z" ] || return 1
  eval "_s=\$ss_$2"
  _n=${"${"}3##*/}
  ln -s "$4" "$_s/$_n" 2>/dev/null || return 1
  eval "sx_$_z=\"\${sx_$_z:-}$1 \$_s/\$_n\$cairn_nl\""
  cairn_grp=1 cairn_deferred=1
}
# cairn_stage64 K PATH MODE OWNER GROUP: the content as base64 on stdin (a pipe would run
# cairn_stage in a subshell, whose staging the commit would never see).
cairn_in64=
cairn_stage64() { cairn_in64=1; cairn_stage "$@"; _r64=$?; cairn_in64=; return $_r64; }
# cairn_unstaged PATH MODE OWNER GROUP [TEXT]: a file cairn_stage was given, written on its own.
cairn_unstaged() {
  if [ $# -ge 5 ]; then cairn_put "$1" "$2" "$3" "$4" '' "$5"
  elif [ -n "$cairn_in64" ]; then cairn_b64 | cairn_put "$1" "$2" "$3" "$4" ''
  else cairn_put "$1" "$2" "$3" "$4" ''; fi
}
# cairn_umask_gives MODE FILE: FILE, just made, has MODE already (the umask gave it): no chmod.
cairn_umask_gives() {
  case $1 in *[!0-7]*) return 1 ;; esac
  [ -n "$cairn_umask" ] || cairn_umask=$(umask)
  [ $((0$1)) = $((0666 & ~0$cairn_umask)) ]
}
cairn_umask=
# cairn_lload K PATH: file K's lines, each ending in a newline, read once a group (lc_K); lx_K
# says what PATH is: file, none, or other (a directory, a dangling link: the plain apply's way).
cairn_lload() {
  eval "_x=\${lx_$1:-}"
  [ -z "$_x" ] || return 0
  cairn_lk="$cairn_lk $1"
  eval "lp_$1=\$2"
  if [ -f "$2" ] && [ -r "$2" ]; then
    _c= _l=
    while IFS= read -r _l; do _c="$_c$_l$cairn_nl"; done < "$2"
    [ -z "$_l" ] || _c="$_c$_l$cairn_nl"
    eval "lc_$1=\$_c lx_$1=file"
  elif [ -e "$2" ] || [ -L "$2" ]; then eval "lx_$1=other"
  else eval "lc_$1= lx_$1=none"; fi
}
# cairn_lhas K PATH TEXT: whether file K has the line TEXT (as grep -qxF would find it).
cairn_lhas() {
  if [ $cairn_diff = 1 ]; then grep -qxF -- "$3" "$2" 2>/dev/null; return; fi
  cairn_lload "$1" "$2"
  eval "_x=\$lx_$1 _c=\${lc_$1:-}"
  [ "$_x" = file ] || return 1
  case $cairn_nl$_c in *"$cairn_nl$3$cairn_nl"*) return 0 ;; esac
  return 1
}
# cairn_lstage K PATH TEXT: TEXT appended to file K's lines, written at the commit; fails when
# PATH is not a file it can edit so (the caller then applies the plain way).
cairn_lstage() {
  [ $cairn_diff = 0 ] || return 1
  cairn_lload "$1" "$2"
  eval "_x=\$lx_$1"
  [ "$_x" != other ] || return 1
  eval "lc_$1=\"\${lc_$1:-}\$3\$cairn_nl\" lx_$1=file ld_$1=1 li_$1=\"\${li_$1:-} $cairn_i\""
  cairn_grp=1 cairn_deferred=1
}
# cairn_commit [KEEP]: the group's staged files put in place, the edited files written, and the
# group's report lines printed (a node whose file could not be put in place failed). The stage
# folders, empty now, go, unless KEEP: only nodes that touch their own path come before the next
# commit, which may use them again.
cairn_commit() {
  _keep=${"${"}1:-}
  if [ -z "$cairn_grp$cairn_lk" ]; then [ -n "$_keep" ] || [ -z "$cairn_stages" ] || cairn_unstage; return 0; fi
  [ -n "$cairn_log" ] || cairn_mklog
  for _k in $cairn_sk; do
    eval "_s=\$ss_$_k _d=\$sd_$_k _n=\$sn_$_k _r=\${sr_$_k:-} _is=\$si_$_k _nx=\${sx_$_k:-}"
    unset ss_$_k sd_$_k sn_$_k sr_$_k si_$_k sx_$_k
    IFS=$cairn_nl; set -f
    set --; for _x in $_r; do set -- "$@" "$_s/$_x"; done
    unset IFS; set +f
    [ $# = 0 ] || sync "$@" 2>/dev/null
    IFS=$cairn_nl; set -f
    set --; for _x in $_n; do set -- "$@" "$_s/$_x"; done
    unset IFS; set +f
    if ! mv -f -- "$@" "$_d/" >"$cairn_log" 2>&1; then
      _e=$(tail -n 20 "$cairn_log")
      # The names (_n) and their nodes (_is) are in the same order.
      IFS=$cairn_nl; set -f
      set -- $_n
      unset IFS; set +f
      for _i in $_is; do
        if [ -e "$_s/$1" ] || [ -L "$_s/$1" ]; then eval "ce_$_i=\$_e"; fi
        shift
      done
      # What the new folders it carried held: failed where it did not get out with them.
      IFS=$cairn_nl; set -f
      for _l in $_nx; do
        _p=${"${"}_l#* }
        if [ -e "$_p" ] || [ -L "$_p" ]; then eval "ce_${"${"}_l%% *}=\$_e"; fi
      done
      unset IFS; set +f
      rm -rf -- "$_s"
    fi
  done
  cairn_sk=
  for _k in $cairn_sz; do unset ss_$_k sd_$_k sz_$_k; done
  cairn_sz=
  [ -n "$_keep" ] || [ -z "$cairn_stages" ] || cairn_unstage
  for _k in $cairn_lk; do
    eval "_p=\$lp_$_k _c=\${lc_$_k:-} _x=\${ld_$_k:-} _is=\${li_$_k:-}"
    unset lx_$_k lc_$_k ld_$_k li_$_k lp_$_k
    [ -n "$_x" ] || continue
    if ! cairn_put "$_p" '' '' '' '' "$_c" >"$cairn_log" 2>&1; then
      _e=$(tail -n 20 "$cairn_log")
      for _i in $_is; do eval "ce_$_i=\$_e"; done
    fi
  done
  cairn_lk=
  [ -n "$cairn_grp" ] || return 0
  cairn_grp=
  _q=$cairn_q; cairn_q=
  # "." starts the batch of lines; cairn_print adds to it.
  cairn_out=.
  for _i in $_q; do
    case $_i in
      # +I: made by a fast turn (cairn_tf, cairn_tn): a create, no reason.
      +*)
        _i=${"${"}_i#+}
        eval "_e=\${ce_$_i:-} cairn_ref=\$qf_$_i"
        unset ce_$_i qf_$_i
        if [ -z "$_e" ]; then
          cairn_n_changed=$((cairn_n_changed + 1)) cairn_out="${"${"}cairn_out}changed      $cairn_ref (create)$cairn_nl"
          case $cairn_kept in *" $_i "*) eval "s_$_i=changed" ;; esac
        else cairn_result "$_i" failed create '' "$_e"; fi
        continue ;;
    esac
    eval "_x=\${qd_$_i:-}"
    if [ -n "$_x" ]; then
      eval "_e=\${ce_$_i:-} cairn_ref=\$qf_$_i _a=\$qa_$_i _r=\$qr_$_i"
      unset qd_$_i ce_$_i qf_$_i qa_$_i qr_$_i
      if [ -n "$_e" ]; then cairn_result "$_i" failed "$_a" '' "$_e"; else cairn_result "$_i" changed "$_a" "$_r"; fi
    else
      eval "_l=\$ql_$_i _e=\$qe_$_i"
      unset ql_$_i qe_$_i
      cairn_print "$_l" "$_e"
    fi
  done
  printf '%s' "${"${"}cairn_out#.}"
  cairn_out=
}
# cairn_mkdir DIR: mkdir -p DIR (the directory type's), with DIR's stage in the same mkdir when
# the next group stages files into DIR (cairn_prestage lists those folders while only nodes that
# touch their own path come before it). DIR did not exist, so neither did its stage.
cairn_prestage=
cairn_mkdir() {
  case $cairn_prestage in
    *"$cairn_nl$1$cairn_nl"*)
      _s="${"${"}1%/}/.cairn-stage.$$"
      mkdir -p "$1" "$_s" 2>/dev/null
      if [ -d "$_s" ] && [ ! -L "$_s" ]; then cairn_stages="$cairn_stages$_s$cairn_nl"; return 0; fi
      [ -d "$1" ] || mkdir -p "$1" ;;
    *) mkdir -p "$1" ;;
  esac
}
# cairn_unstage: the stage folders removed (empty after a commit; on exit, what they still hold).
cairn_unstage() {
  IFS=$cairn_nl; set -f
  set -- $cairn_stages
  unset IFS; set +f
  cairn_stages=
  rm -rf -- "$@" 2>/dev/null
}
# cairn_other PATH KIND WHAT: fails (1) saying so when something other than a KIND is at PATH.
cairn_other() {
  if [ -L "$1" ]; then _k=symlink; [ "$2" != symlink ] || return 0
  elif [ ! -e "$1" ]; then return 0
  elif [ -d "$1" ]; then _k=directory; [ "$2" != directory ] || return 0
  elif [ -f "$1" ]; then _k=file; [ "$2" != file ] || return 0
  else _k=other; fi
  printf '%s is a %s, not a %s; %s\n' "$1" "$_k" "$2" "$3"; return 1
}
# cairn_diff PATH [TEXT]: a unified diff from PATH's content to TEXT (else stdin), for --diff.
cairn_diff() {
  _t=$(mktemp) || return 1
  if [ $# -ge 2 ]; then printf '%s' "$2" > "$_t"; else cat > "$_t"; fi
  if [ -f "$1" ]; then _o=$1; else _o=/dev/null; fi
  diff -u "$_o" "$_t" | sed "1s|^--- .*|--- $_o|;2s|^+++ .*|+++ $1|"
  rm -f "$_t"
}
cairn_not() { if "$@"; then return 1; fi; return 0; }
cairn_in() { case " $2 " in *" $1 "*) return 0 ;; esac; return 1; }

# cairn_node I FN WHY NOOP ACTION EXISTS INLINE INSYNC NOTIFIED CHECKED HAS: a node's turn once its requisites
# allow it (engine.ts runNode): check, then apply, refresh or report. nFN is the node's function:
# \`nFN c|a|e|r|d\` checks, applies, tells whether it exists, refreshes, shows its diff; HAS lists
# which of r and d it has, and o when it notifies (o<I>, oa<I>): \`command -v\` of a function that
# is not there would search PATH for a command of that name.
cairn_node() {
  local _i _f _why _pending _sync _act _reason _by _rc _r _e
  _i=$1 _f=$2 _why=$3 _pending=
  [ -n "$cairn_loaded" ] || cairn_load
  # Only a node something notifies ($9) can have a refresh due.
  [ "$9" != 1 ] || [ "$_why" = transition ] || eval "_pending=\${p_$_i:-}"
  # ${10} = 1: the turn's fast path ran the check already, and it failed.
  if [ "${"${"}10:-0}" = 1 ]; then _sync=0; else cairn_skip=; if n$_f c; then _sync=1; else _sync=0; fi; fi
  if [ -n "$cairn_skip" ]; then cairn_result "$_i" skipped none "$cairn_skip"; return; fi
  if [ $_sync = 1 ] && [ -z "$_pending" ]; then
    if [ -n "$8" ]; then cairn_result "$_i" skipped none "$8"; else cairn_result "$_i" unchanged none ''; fi
    return
  fi
  if [ $_sync = 1 ]; then _act=refresh
  elif [ "$5" != destroy ] && [ "$6" = 1 ] && n$_f e; then _act=update
  else _act=$5; fi
  _reason=
  if [ "$_why" = transition ]; then _reason=transition
  elif [ $_act = refresh ] || [ "$_why" = notified ]; then eval "_by=\${nb_$_i:-}"; _reason="notified by ${"${"}_pending:-${"${"}_by:-a pending notification}}"; fi
  if [ "$4" = 1 ] || [ $cairn_mode = check ]; then
    if [ $cairn_diff = 1 ] && [ $_act != refresh ] && cairn_in d "${"${"}11}"; then (n$_f d) 2>&1; fi
    [ "$4" = 1 ] && _reason=noop
    [ "$4" = 1 ] || ! cairn_in o "${"${"}11}" || o$_i
    cairn_result "$_i" would-change $_act "$_reason"
    return
  fi
  if [ $cairn_diff = 1 ] && [ $_act != refresh ] && cairn_in d "${"${"}11}"; then (n$_f d) 2>&1; fi
  cairn_claimed=
  [ "$_why" = transition ] || ! cairn_in o "${"${"}11}" || oa$_i
  if [ $_act = refresh ]; then
    if cairn_in r "${"${"}11}"; then n$_f r >"$cairn_log" 2>&1; _rc=$?; else _rc=0; fi
  elif [ "$7" = 1 ]; then
    cairn_reason= cairn_error=
    n$_f a; _rc=$?
  else
    cairn_i=$_i cairn_deferred=
    n$_f a >"$cairn_log" 2>&1; _rc=$?
    if [ $_rc = 0 ] && [ -n "$_pending" ] && [ $_act = update ] && cairn_in r "${"${"}11}"; then n$_f r >"$cairn_log" 2>&1; _rc=$?; [ $_rc != 100 ] || _rc=0; fi
  fi
  [ -z "$_pending" ] || eval "p_$_i="
  # Delivered (changed or found nothing to do): the pending entry goes; a change's own entries
  # written ahead stand; a failure or no change takes them back.
  if [ -n "$_pending" ] && { [ $_rc = 0 ] || [ $_rc = 100 ]; }; then eval "rm -f \"\$cairn_pending_dir/\$pk_$_i\""; fi
  if [ $_rc != 0 ] && [ -n "$cairn_claimed" ]; then (cd "$cairn_pending_dir" && rm -f $cairn_claimed); fi
  case $_rc in
    0) if [ -n "$cairn_deferred" ]; then
         # Staged: changed once the group's commit puts it in place (cairn_commit).
         cairn_deferred=; eval "qd_$_i=1 qa_$_i=\$_act qr_$_i=\$_reason qf_$_i=\$cairn_ref"; cairn_q="$cairn_q $_i"
       else ! cairn_in o "${"${"}11}" || o$_i; cairn_result "$_i" changed $_act "$_reason"; fi ;;
    100) if [ "$7" = 1 ] && [ $_act != refresh ]; then _r=$cairn_reason; else _r=$(tail -n 1 "$cairn_log"); fi; cairn_result "$_i" unchanged none "$_r" ;;
    *) if [ "$7" = 1 ] && [ $_act != refresh ]; then _e=$cairn_error; else _e=$(tail -n 20 "$cairn_log"); fi; cairn_result "$_i" failed $_act '' "$_e" ;;
  esac
}

# cairn_plain I FN ACTION EXISTS HAS: cairn_node for the usual turn, in apply mode without --diff:
# a node of the main run, not notified, notifying nothing, not noop, whose check just failed.
# The same steps with none of the tests that cannot apply to it.
cairn_plain() {
  if [ $cairn_mode = check ] || [ $cairn_diff = 1 ]; then cairn_node "$1" "$2" '' 0 "$3" "$4" 0 '' 0 1 "$5"; return; fi
  [ -n "$cairn_loaded" ] || cairn_load
  _act=$3
  if [ "$4" = 1 ] && [ "$3" != destroy ] && n$2 e; then _act=update; fi
  cairn_i=$1 cairn_deferred=
  n$2 a >"$cairn_log" 2>&1
  case $? in
    0) if [ -n "$cairn_deferred" ]; then
         cairn_deferred=; eval "qd_$1=1 qa_$1=\$_act qr_$1= qf_$1=\$cairn_ref"; cairn_q="$cairn_q $1"
       else cairn_result "$1" changed $_act ''; fi ;;
    100) cairn_result "$1" unchanged none "$(tail -n 1 "$cairn_log")" ;;
    *) cairn_result "$1" failed $_act '' "$(tail -n 20 "$cairn_log")" ;;
  esac
}

# Fast turns (ShellProvider.turn; script.ts writes them for plain nodes of the main run): a node's
# whole turn in the common case, while cairn_general is empty (no --diff) and nothing failed or
# stopped, so that the node's requisites are met. Each reports the node in sync (cairn_ok), or in
# apply mode brings it there from nothing at its path and reports or queues it as cairn_plain
# would; for anything else it returns 1 having changed nothing, and the general turn runs (which
# reports a failure with its output).
cairn_general=
[ $cairn_diff = 0 ] || cairn_general=1
# cairn_gt I ACTION EXISTS HAS REQ…: a fast turn's general turn when its check is its function's:
# the gate, the check, cairn_plain.
cairn_gt() {
  _ti=$1 _ta=$2 _te=$3 _th=$4; shift 4
  cairn_go "$_ti" "$@" || return 0
  set -- "$_ti" "$_ta" "$_te" "$_th"
  [ -n "$cairn_loaded_fast" ] || cairn_load_fast
  if cairn_n "$1" c; then cairn_ok "$1"; else cairn_plain "$1" "$1" "$2" "$3" "$4"; fi
}
# cairn_tf I K PATH TEXT: a file staged in folder stage K: straight into the stage once it is
# made (a new file, no mode or owner to set, nothing to sync), else through cairn_stage.
cairn_tf() {
  if [ -e "$3" ] || [ -L "$3" ]; then cairn_file_is "$3" "$4" || return 1; cairn_ok "$1"; return 0; fi
  [ $cairn_mode = apply ] || return 1
  eval "_s=\${ss_$2:-} _z=\${sz_$2:-}"
  if [ -n "$_s" ]; then
    _n=${"${"}3##*/}
    printf '%s' "$4" 2>/dev/null >"$_s/$_n" || { rm -f "$_s/$_n"; return 1; }
    if [ -n "$_z" ]; then eval "sx_$_z=\"\${sx_$_z:-}$1 \$_s/\$_n\$cairn_nl\" qf_$1=\$cairn_ref"
    else eval "sn_$2=\"\${sn_$2:-}\$_n\$cairn_nl\" si_$2=\"\${si_$2:-} $1\" qf_$1=\$cairn_ref"; fi
    cairn_q="$cairn_q +$1" cairn_grp=1
    return 0
  fi
  cairn_i=$1 cairn_deferred=
  cairn_stage "$2" "$3" '' '' '' "$4" >/dev/null 2>&1 || return 1
  cairn_queue "$1"
}
# cairn_queue I: node I (created, cairn_ref) staged, reported at the commit; else changed now.
cairn_queue() {
  if [ -n "$cairn_deferred" ]; then cairn_deferred=; eval "qf_$1=\$cairn_ref"; cairn_q="$cairn_q +$1"
  else cairn_created "$1"; fi
}
# cairn_created I: node I (cairn_ref) made where nothing was: cairn_result I changed create ''.
cairn_created() {
  cairn_n_changed=$((cairn_n_changed + 1))
  case $cairn_kept in *" $1 "*) eval "s_$1=changed" ;; esac
  if [ -n "$cairn_grp" ]; then eval "ql_$1=\"changed      \$cairn_ref (create)\" qe_$1="; cairn_q="$cairn_q $1"; return; fi
  printf 'changed      %s (create)\n' "$cairn_ref"
}
# cairn_td I PATH: a directory.
cairn_td() {
  if [ -d "$2" ] && [ ! -L "$2" ]; then cairn_ok "$1"; return 0; fi
  if [ -e "$2" ] || [ -L "$2" ] || [ $cairn_mode != apply ]; then return 1; fi
  cairn_mkdir "$2" >/dev/null 2>&1 || return 1
  cairn_created "$1"
}
# cairn_sd I K KP PATH: a directory the group may make in its parent's stage (cairn_sdir).
cairn_sd() {
  if [ -d "$4" ] && [ ! -L "$4" ]; then cairn_ok "$1"; return 0; fi
  if [ -e "$4" ] || [ -L "$4" ] || [ $cairn_mode != apply ]; then return 1; fi
  if cairn_sdir "$1" "$2" "$3" "$4" '' '' ''; then cairn_queue "$1"; return 0; fi
  cairn_mkdir "$4" >/dev/null 2>&1 || return 1
  cairn_created "$1"
}
# cairn_tl I K PATH TARGET: a symlink to an absolute TARGET, in folder K's stage when the group
# makes K (cairn_slink).
cairn_tl() {
  if [ -L "$3" ]; then [ "$3" -ef "$4" ] || return 1; cairn_ok "$1"; return 0; fi
  if [ -e "$3" ] || [ $cairn_mode != apply ]; then return 1; fi
  if cairn_slink "$1" "$2" "$3" "$4"; then cairn_queue "$1"; return 0; fi
  ln -s "$4" "$3" >/dev/null 2>&1 || return 1
  cairn_created "$1"
}
# cairn_tn I K PATH TEXT: a line of file K, staged.
cairn_tn() {
  if cairn_lhas "$2" "$3" "$4"; then cairn_ok "$1"; return 0; fi
  [ $cairn_mode = apply ] || return 1
  cairn_i=$1 cairn_deferred=
  cairn_lstage "$2" "$3" "$4" || return 1
  cairn_queue "$1"
}

# cairn_notify_lazy H DEFER INVOCATION REF / cairn_notify H REF: a change notifies (engine.ts notify()).
cairn_notify_lazy() {
  if [ "$2" = 1 ]; then _k=E; elif [ -n "$cairn_flushing" ]; then _k=$cairn_flushing; else _k=$3; fi
  eval "tr_$1=\"\${tr_$1:-} $_k\"; nb_$1=\$4"
}
cairn_notify() { eval "p_$1=\$2; nb_$1=\$2"; }

# cairn_ahead KEY REF…: before a node that notifies changes anything, each notification is written
# to the state directory (DESIGN §5.3: never lost), unless already pending; cairn_claimed lists
# those this node wrote, taken back if it fails or changes nothing.
cairn_ahead() {
  [ -d "$cairn_pending_dir" ] || mkdir -p "$cairn_pending_dir" || return 0
  while [ $# -ge 2 ]; do
    if [ ! -e "$cairn_pending_dir/$1" ]; then printf '%s\n' "$2" > "$cairn_pending_dir/$1" && cairn_claimed="$cairn_claimed $1"; fi
    shift 2
  done
}
# cairn_pending KEY: whether a notification of an earlier run is pending; its notifier in cairn_from.
cairn_pending() {
  [ -f "$cairn_pending_dir/$1" ] || return 1
  IFS= read -r cairn_from < "$cairn_pending_dir/$1" || [ -n "$cairn_from" ]
}

# cairn_due H WHEN DEFER: whether handler H is due in this flush; if so its trigger is used up.
cairn_due() {
  eval "_set=\${tr_$1:-}"
  [ -n "$_set" ] || return 1
  case $2 in
    rest) for _k in $_set; do [ "$_k" = E ] || { eval "tr_$1="; return 0; }; done; return 1 ;;
    end) if cairn_in E "$_set" || cairn_in F "$_set"; then eval "tr_$1="; return 0; fi; return 1 ;;
  esac
  if cairn_in "$2" "$_set" || { [ "$3" != 1 ] && cairn_in F "$_set"; }; then
    _left=; for _k in $_set; do [ "$_k" = "$2" ] || [ "$_k" = F ] || _left="$_left $_k"; done
    eval "tr_$1=\$_left"; return 0
  fi
  return 1
}

# cairn_flush WHEN: runs the handlers due (their states' declaration order), and those they
# notify, transitively; each at most once per flush (engine.ts runHandlers()).
cairn_flush() {
  _done=' '
  case $1 in rest|end) cairn_flushing=F ;; *) cairn_flushing=$1 ;; esac
  while :; do
    _next=
    for _h in $cairn_handlers; do
      case $_done in *" $_h "*) continue ;; esac
      eval "_df=\${df_$_h:-0}"
      if cairn_due "$_h" "$1" "$_df"; then _next=$_h; break; fi
    done
    [ -n "$_next" ] || break
    _done="$_done$_next "
    t$_next notified
    # Delivered only once it ran (changed or unchanged), and nothing triggered it again.
    eval "_st=\$s_$_next _again=\${tr_$_next:-}"
    if [ $cairn_mode = apply ] && [ -z "$_again" ]; then
      case $_st in changed|unchanged) eval "rm -f \"\$cairn_pending_dir/\$pk_$_next\"" ;; esac
    fi
  done
  cairn_flushing=
}
`;
