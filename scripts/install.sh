#!/bin/sh
# Installs what Cairn needs on a fresh Debian machine, builds it, and runs it on the bundled
# example site: plan, apply, and apply again (0 changes), in the scratch folder /tmp/cairn-example.
set -eu
cd "$(dirname "$0")/.."

need_node_major=20
if ! command -v node >/dev/null 2>&1 || [ "$(node -p 'process.versions.node.split(".")[0]')" -lt $need_node_major ]; then
  echo "install.sh: Node.js >= $need_node_major is required (Debian's nodejs package is too old; use the machine's Node)" >&2
  exit 1
fi

# Debian packages the test suite uses: git for the checkout itself; a real OpenSSH server, sudo
# and iproute2 (network namespaces) for the SSH tests; debootstrap, systemd-container
# (systemd-nspawn) and dpkg-dev (dpkg-scanpackages) for the test lab's Debian hosts (test/lab/);
# gnupg to sign the second apt repository test/lab-package-repository.test.ts serves them;
# etcd-server and etcd-client for the store's etcd cluster tests; GNU time for the benchmark;
# busybox: its `sh` (ash) runs the scripts `cairn export` writes, and checks the shell fragments parse;
# the guest tools (disk images with fdisk/partx/kpartx, file systems, qemu-img, qemu, libvirt, ISO
# makers) for the provisioner and the lifecycle types; chromium for the web UI's browser tests.
missing=""
for pkg in git openssh-server openssh-client sudo iproute2 debootstrap systemd-container dpkg-dev gnupg etcd-server etcd-client time busybox \
    fdisk dosfstools qemu-utils qemu-system-x86 libvirt-daemon-system libvirt-clients genisoimage xorriso kpartx \
    chromium; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing="$missing $pkg"
done
if [ -n "$missing" ]; then
  # On a machine without an init system, keep the packages from starting their services (the
  # tests start their own sshd); only while installing, and only if no policy is in place.
  policy=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod 0755 /usr/sbin/policy-rc.d && policy=1
  fi
  apt-get -o DPkg::Lock::Timeout=300 update
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y --no-install-recommends $missing
  [ -z "$policy" ] || rm -f /usr/sbin/policy-rc.d
fi

npm ci --no-fund --no-audit
npm run build

# The bundled example converges a scratch folder (/tmp/cairn-example), never the real /etc.
rm -rf /tmp/cairn-example /tmp/cairn-example-state
run() { echo; echo "== cairn $*"; node dist/cairn.cjs "$@"; }
run plan --site examples/site --target web1
run apply --site examples/site --target web1
run apply --site examples/site --target web1   # converged: 0 changed
