#!/bin/sh
# lab.sh - throwaway Debian 12 hosts with a real systemd, booted with systemd-nspawn, for the
# test suite (test/helpers/lab.ts). Works where systemd is NOT PID 1 (see ../shared/lab.md for
# the pitfalls each step works around). Run as root. Several test processes may use it at once:
# the cached golden root and apt repo are built once under a lock, and every host gets a slot of
# its own (atomic mkdir) that fixes its name, network namespace, veth and /30 subnet.
#
#   lab.sh root                    build (once) and print the cached golden root: DIR with fs/ and
#                                  the lab's ssh key id_ed25519 that root on every guest accepts
#   lab.sh repo                    build (once) and print the cached local apt repository
#   lab.sh new OWNER_PID [--repo]  allocate a slot, make the host (overlay), its network, boot it
#                                  and wait for systemd + sshd; prints `slot name ip dir`
#   lab.sh pid SLOT                PID of the guest's systemd (for nsenter -t PID -a ...)
#   lab.sh wait SLOT               wait for running/degraded + ssh (e.g. after a guest reboot)
#   lab.sh down SLOT [kill]        power off (SIGTERM to nspawn = clean shutdown; kill = SIGKILL)
#   lab.sh rm SLOT [kill]          down + remove overlay, netns and veth, cgroups, slot
#   lab.sh gc                      rm every host whose owner process is gone
#   lab.sh rmowner PID             rm (kill) every host PID owns
set -eu
LAB=${CAIRN_LAB_DIR:-/var/tmp/cairn-lab}
SUITE=bookworm
INCLUDE=systemd,systemd-sysv,dbus,openssh-server,sudo,cron,procps,git,curl,ca-certificates,xz-utils,bzip2,unzip
# Change a version when its recipe changes: the cache key changes with it.
ROOT_KEY=$(printf 'root-v1 %s minbase %s' "$SUITE" "$INCLUDE" | sha256sum | cut -c1-12)
ROOT=$LAB/root-$ROOT_KEY
REPO_PKGS="hello tree"
REPO_KEY=$(printf 'repo-v1 %s cairn-dummy cairn-svc' "$REPO_PKGS" | sha256sum | cut -c1-12)
REPO=$LAB/repo-$REPO_KEY
HOSTS=$LAB/hosts
MAX_SLOTS=4000
KEY=$ROOT/id_ed25519
SSHO="-i $KEY -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o BatchMode=yes -o ConnectTimeout=2"

die() { echo "lab.sh: $*" >&2; exit 1; }

# ---- golden root -------------------------------------------------------------------------------

prep_root() { # one-time preparation of a debootstrapped tree in $1/fs (lab.md §2)
  d=$1; r=$d/fs
  ssh-keygen -q -t ed25519 -N '' -C cairn-lab -f "$d/id_ed25519"
  install -d -m 700 "$r/root/.ssh"
  install -m 600 "$d/id_ed25519.pub" "$r/root/.ssh/authorized_keys"
  # Host keys are made per guest; only ed25519 (fast to make, and the one known_hosts records).
  rm -f "$r"/etc/ssh/ssh_host_*
  mkdir -p "$r/etc/ssh/sshd_config.d"
  printf 'HostKey /etc/ssh/ssh_host_ed25519_key\n' > "$r/etc/ssh/sshd_config.d/cairn-lab.conf"
  rm -f "$r/var/lib/dbus/machine-id"         # else every guest shares one machine-id
  : > "$r/etc/machine-id"
  rm -f "$r"/var/cache/apt/archives/*.deb "$r"/var/cache/apt/*.bin
  rm -rf "$r"/var/lib/apt/lists/*
  # Hosts never reach the network: no mirror (apt would try DNS for it and lose 10 s).
  rm -f "$r/etc/apt/sources.list"
  rm -f "$r"/etc/apt/sources.list.d/*
}

root() {
  [ -d "$ROOT" ] || {
    mkdir -p "$LAB"
    exec 8>"$LAB/.root.lock"; flock 8
    if [ ! -d "$ROOT" ]; then
      mirror=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
      [ -n "$mirror" ] || mirror=$(awk '/^deb /{print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
      [ -n "$mirror" ] || die "no Debian mirror configured in /etc/apt/sources.list.d/debian.sources"
      tmp=$LAB/.root-$ROOT_KEY.$$; rm -rf "$tmp"; mkdir -p "$tmp"
      echo "lab.sh: building the golden root (debootstrap $SUITE from $mirror, about a minute)" >&2
      debootstrap --variant=minbase --include="$INCLUDE" "$SUITE" "$tmp/fs" "$mirror" > "$tmp.log" 2>&1 ||
        { tail -n 20 "$tmp.log" >&2; rm -rf "$tmp"; die "debootstrap failed (log: $tmp.log)"; }
      rm -f "$tmp.log"
      prep_root "$tmp"
      mv "$tmp" "$ROOT"                        # atomic: readers see no root or a complete one
    fi
    exec 8>&-
  }
  echo "$ROOT"
}

# ---- local apt repository ----------------------------------------------------------------------

dummy_deb() { # dummy_deb DIR NAME VERSION [unit]: a tiny dependency-free package built here
  out=$1 name=$2 ver=$3; b=$out/.build-$name-$ver
  mkdir -p "$b/DEBIAN" "$b/usr/share/$name"
  echo "$ver" > "$b/usr/share/$name/version"
  if [ "${4:-}" = unit ]; then
    mkdir -p "$b/lib/systemd/system"
    printf '[Unit]\nDescription=Cairn lab test service\n\n[Service]\nExecStart=/bin/sleep infinity\n\n[Install]\nWantedBy=multi-user.target\n' \
      > "$b/lib/systemd/system/$name.service"
  fi
  printf 'Package: %s\nVersion: %s\nArchitecture: all\nMaintainer: Cairn tests <tests@cairn.invalid>\nSection: misc\nPriority: optional\nDescription: Cairn lab test package\n' \
    "$name" "$ver" > "$b/DEBIAN/control"
  dpkg-deb --root-owner-group -b "$b" "$out/${name}_${ver}_all.deb" >/dev/null
  rm -rf "$b"
}

repo() {
  [ -d "$REPO" ] || {
    mkdir -p "$LAB"
    exec 8>"$LAB/.repo.lock"; flock 8
    if [ ! -d "$REPO" ]; then
      tmp=$LAB/.repo-$REPO_KEY.$$; rm -rf "$tmp"; mkdir -p "$tmp"
      # shellcheck disable=SC2086
      (cd "$tmp" && apt-get -q -o DPkg::Lock::Timeout=300 download $REPO_PKGS >/dev/null 2>&1) || {
        apt-get -q -o DPkg::Lock::Timeout=300 update >/dev/null 2>&1 || true
        (cd "$tmp" && apt-get -q -o DPkg::Lock::Timeout=300 download $REPO_PKGS >/dev/null) ||
          { rm -rf "$tmp"; die "apt-get download $REPO_PKGS failed"; }
      }
      dummy_deb "$tmp" cairn-dummy 1.0-1
      dummy_deb "$tmp" cairn-dummy 2.0-1
      dummy_deb "$tmp" cairn-svc 1.0-1 unit
      (cd "$tmp" && dpkg-scanpackages --multiversion . /dev/null > Packages 2>/dev/null && gzip -9k Packages)
      chmod -R a+rX "$tmp"
      mv "$tmp" "$REPO"
    fi
    exec 8>&-
  }
  echo "$REPO"
}

# ---- hosts ---------------------------------------------------------------------------------------

# Slot N: host labN, netns cairnlabN, host-side veth vclN (<= 15 chars), 10.222.0.0/16 cut in /30s.
name_of() { echo "lab$1"; }
netns_of() { echo "cairnlab$1"; }
ip_base() { b=$(($1 * 4)); echo "10.222.$((b / 256)).$((b % 256))"; }
guest_ip() { b=$(($1 * 4)); echo "10.222.$((b / 256)).$((b % 256 + 2))"; }
host_ip() { b=$(($1 * 4)); echo "10.222.$((b / 256)).$((b % 256 + 1))"; }

starttime() { sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f20; }

alloc() { # alloc OWNER: claim the first free slot
  mkdir -p "$HOSTS"
  s=1
  while [ $s -le $MAX_SLOTS ]; do
    if mkdir "$HOSTS/$s" 2>/dev/null; then
      echo "$1 $(starttime "$1")" > "$HOSTS/$s/owner"
      echo $s; return 0
    fi
    s=$((s + 1))
  done
  die "no free slot (all $MAX_SLOTS in use under $HOSTS)"
}

mk() { # mk SLOT [repo]: overlay on the golden root, own hostname, host key, apt source
  s=$1; n=$(name_of "$s"); h=$HOSTS/$s; d=$h/fs
  mkdir -p "$d" "$h/upper" "$h/work"
  mount -t overlay overlay -o "lowerdir=$ROOT/fs,upperdir=$h/upper,workdir=$h/work" "$d"
  ssh-keygen -q -t ed25519 -N '' -C "root@$n" -f "$d/etc/ssh/ssh_host_ed25519_key"
  echo "$n" > "$d/etc/hostname"
  printf '127.0.1.1\t%s\n' "$n" >> "$d/etc/hosts"
  if [ "${2:-}" = repo ]; then
    echo 'deb [trusted=yes] file:/srv/repo ./' > "$d/etc/apt/sources.list.d/cairn-lab.list"
    echo 'Acquire::Languages "none";' > "$d/etc/apt/apt.conf.d/99cairn-lab"
    mkdir -p "$d/srv/repo"
  fi
}

net() { # net SLOT: netns + veth, host side .1/30, guest eth0 .2/30
  s=$1; ns=$(netns_of "$s"); v=vcl$s
  ip netns del "$ns" 2>/dev/null || true      # a leftover of a crashed run
  ip link del "$v" 2>/dev/null || true
  ip netns add "$ns"
  ip link add "$v" type veth peer name eth0 netns "$ns"
  ip addr add "$(host_ip "$s")/30" dev "$v"
  ip link set "$v" up
  ip -n "$ns" link set lo up
  ip -n "$ns" addr add "$(guest_ip "$s")/30" dev eth0
  ip -n "$ns" link set eth0 up
}

# The cgroup hierarchies nspawn places itself in: hybrid v1 (name=systemd + unified) or pure v2.
cgroup_roots() {
  for c in /sys/fs/cgroup/systemd /sys/fs/cgroup/unified; do [ -d "$c" ] && echo "$c"; done
  [ -f /sys/fs/cgroup/cgroup.controllers ] && echo /sys/fs/cgroup
  true
}

up() { # up SLOT [repo] [nspawn args...]
  s=$1; shift; n=$(name_of "$s"); h=$HOSTS/$s
  bind=
  if [ "${1:-}" = repo ]; then bind="--bind-ro=$REPO:/srv/repo"; shift; fi
  # Each guest gets its own cgroup: without this nspawn (no systemd on the host) puts /payload and
  # /supervisor at the hierarchy root, shared by every guest. The loop restarts nspawn when the
  # guest reboots (nspawn exits 133 then).
  # shellcheck disable=SC2016
  setsid sh -c '
    n=$0 d=$1 cgs=$2; shift 2
    for c in $cgs; do mkdir -p "$c/cairn-lab/$n" && echo $$ > "$c/cairn-lab/$n/cgroup.procs"; done
    while :; do
      systemd-nspawn --register=no --keep-unit --console=read-only -q -M "$n" -D "$d" \
        --network-namespace-path="/run/netns/cairnlab${n#lab}" "$@" -b
      rc=$?; echo "nspawn exited rc=$rc"; [ $rc = 133 ] || exit $rc
    done' "$n" "$h/fs" "$(cgroup_roots)" $bind "$@" > "$h/log" 2>&1 < /dev/null &
  echo $! > "$h/sup.pid"
  wait_up "$s"
}

sup_pid() { cat "$HOSTS/$1/sup.pid" 2>/dev/null || true; }
# the current nspawn (child of the loop) and the guest's PID 1 (child of nspawn named systemd)
nspawn_pid() { sp=$(sup_pid "$1"); [ -n "$sp" ] || return 0
  for c in $(cat /proc/"$sp"/task/*/children 2>/dev/null); do
    [ "$(cat /proc/"$c"/comm 2>/dev/null)" = systemd-nspawn ] && echo "$c"; done; true; }
init_pid() { np=$(nspawn_pid "$1"); [ -n "$np" ] || return 0
  for c in $(cat /proc/"$np"/task/*/children 2>/dev/null); do
    [ "$(cat /proc/"$c"/comm 2>/dev/null)" = systemd ] && echo "$c"; done; true; }

wait_up() {
  s=$1; n=$(name_of "$s"); h=$HOSTS/$s; ip=$(guest_ip "$s"); pid=; t=0
  while [ -z "$pid" ]; do
    pid=$(init_pid "$s")
    kill -0 "$(sup_pid "$s")" 2>/dev/null || { cat "$h/log" >&2; die "$n: nspawn ended"; }
    t=$((t + 1)); [ $t -gt 600 ] && die "$n: no init after 30 s"
    [ -n "$pid" ] || sleep 0.05
  done
  # is-system-running --wait fails until the guest's bus exists: retry
  t=0; st=
  until st=$(nsenter -t "$pid" -a systemctl is-system-running --wait 2>/dev/null) || [ "$st" = degraded ]; do
    t=$((t + 1)); [ $t -gt 600 ] && die "$n: state=$st after 60 s"
    sleep 0.1
  done
  t=0
  # shellcheck disable=SC2086
  until ssh $SSHO "root@$ip" true 2>/dev/null; do
    t=$((t + 1)); [ $t -gt 300 ] && die "$n: ssh root@$ip does not answer"
    sleep 0.1
  done
  if [ "$st" != running ]; then
    echo "lab.sh: $n is $st:" >&2; nsenter -t "$pid" -a systemctl --failed --no-legend >&2 || true
  fi
}

new() { # new OWNER [--repo] [--bind=SRC:DST | --bind-ro=SRC:DST ...]
  owner=$1; shift; r=
  [ "${1:-}" = --repo ] && { r=repo; shift; }
  for b do case $b in --bind=*|--bind-ro=*) ;; *) die "new: unknown argument $b" ;; esac; done
  [ -d "$ROOT" ] || die "no golden root: run lab.sh root first"
  [ -z "$r" ] || [ -d "$REPO" ] || die "no repo: run lab.sh repo first"
  s=$(alloc "$owner")
  # any failure below (set -e, die) ends the script: take the half-made host with it
  trap 'rc=$?; trap - EXIT; set +e; rmhost "$s" kill; exit $rc' EXIT
  trap 'exit 130' INT TERM HUP
  mk "$s" $r
  net "$s"
  up "$s" $r "$@"
  trap - EXIT INT TERM HUP
  echo "$s $(name_of "$s") $(guest_ip "$s") $HOSTS/$s/fs"
}

alive() { [ -n "$1" ] && [ -e "/proc/$1/stat" ] && [ "$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -c1)" != Z ]; }

hard_kill() { # SIGKILL of the guest's PID 1 ends its whole PID namespace; nspawn then exits too
  ip=$(init_pid "$1"); np=$(nspawn_pid "$1")
  kill -KILL "$(sup_pid "$1")" 2>/dev/null || true   # first, so the loop does not restart nspawn
  [ -z "$ip" ] || kill -KILL "$ip" 2>/dev/null || true
  t=0
  while alive "$np"; do
    t=$((t + 1)); [ $t -gt 60 ] && kill -KILL "$np" 2>/dev/null
    sleep 0.05
  done
}

down() { # down SLOT [kill]
  s=$1; n=$(name_of "$s"); sp=$(sup_pid "$s")
  if [ -n "$sp" ]; then
    if [ "${2:-}" = kill ]; then hard_kill "$s"; fi
    last=; t=0
    while alive "$sp"; do
      # SIGTERM to nspawn = clean poweroff of the guest (nspawn exits 0/1, the loop ends)
      np=$(nspawn_pid "$s")
      [ -n "$np" ] && [ "$np" != "$last" ] && kill -TERM "$np" 2>/dev/null && last=$np
      t=$((t + 1)); [ $t -gt 200 ] && { hard_kill "$s"; break; }   # 10 s: give up being polite
      sleep 0.05
    done
    rm -f "$HOSTS/$s/sup.pid"
  fi
  for c in $(cgroup_roots); do
    g=$c/cairn-lab/$n
    [ -d "$g" ] || continue
    # anything left in the guest's cgroups (there should be nothing) is killed
    find "$g" -name cgroup.procs -exec cat {} + 2>/dev/null | xargs -r kill -KILL 2>/dev/null || true
    t=0
    until find "$g" -depth -type d -exec rmdir {} + 2>/dev/null; do
      t=$((t + 1)); [ $t -gt 40 ] && { echo "lab.sh: cannot remove cgroup $g" >&2; break; }
      sleep 0.05
    done
  done
  rm -rf "/run/systemd/nspawn/propagate/$n"
}

rmhost() { # rm SLOT [kill]
  s=$1; h=$HOSTS/$s
  [ -d "$h" ] || return 0
  down "$s" "${2:-}"
  if mountpoint -q "$h/fs"; then umount "$h/fs" 2>/dev/null || umount -l "$h/fs"; fi
  ip netns del "$(netns_of "$s")" 2>/dev/null || true   # deleting the netns deletes the veth pair
  ip link del "vcl$s" 2>/dev/null || true
  rm -rf "$h/fs" "$h/upper" "$h/work" "$h/log" "$h/sup.pid"
  rm -rf "$h"                                         # frees the slot last
}

rmowner() { # rmowner PID: remove every host PID owns (its exit handler: also hosts still booting)
  [ -d "$HOSTS" ] || return 0
  for h in "$HOSTS"/*; do
    [ -f "$h/owner" ] || continue
    read -r pid st < "$h/owner" || continue
    [ "$pid" = "$1" ] && rmhost "${h##*/}" kill
  done
  true
}

gc() {
  [ -d "$HOSTS" ] || return 0
  for h in "$HOSTS"/*; do
    [ -f "$h/owner" ] || continue
    read -r pid st < "$h/owner" || continue
    [ -n "$pid" ] && [ "$(starttime "$pid")" = "$st" ] && continue
    echo "lab.sh: removing $(name_of "${h##*/}") (its owner $pid is gone)" >&2
    rmhost "${h##*/}" kill
  done
}

cmd=${1:-}; [ $# -gt 0 ] && shift
case $cmd in
  root) root ;;
  repo) repo ;;
  new) new "$@" ;;
  pid) init_pid "$@" ;;
  wait) wait_up "$@" ;;
  down) down "$@" ;;
  rm) rmhost "$@" ;;
  gc) gc ;;
  rmowner) rmowner "$@" ;;
  *) echo "usage: $0 root|repo|new OWNER [--repo] [--bind[-ro]=SRC:DST…]|pid|wait|down|rm SLOT|gc" >&2; exit 2 ;;
esac
