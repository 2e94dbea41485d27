#!/bin/sh
# Installs the peers that `npm run bench -- --peers` runs beside Cairn: Puppet and Ansible, the
# Debian packages listed in ../shared/bench/peers/README.md, plus GNU time for the measurements.
set -eu
export DEBIAN_FRONTEND=noninteractive
# On a machine with no init system, keep the packages from starting services during the install.
created=""
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
  chmod +x /usr/sbin/policy-rc.d
  created=yes
fi
apt-get -o DPkg::Lock::Timeout=600 update
apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends ansible puppet puppet-module-puppetlabs-stdlib time
[ -z "$created" ] || rm -f /usr/sbin/policy-rc.d
