#!/bin/sh
# Installs the peers the benchmark runs beside Cairn: CFEngine 3 (cf-agent, in every full
# `npm run bench`), Puppet and Ansible (`npm run bench -- --peers`), the Debian packages listed in
# ../shared/bench/peers/README.md, plus GNU time for the measurements. None of CFEngine's daemons
# is needed: cf-agent runs on its own, from a work directory of the bench's.
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
apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends cfengine3 ansible puppet puppet-module-puppetlabs-stdlib time
[ -z "$created" ] || rm -f /usr/sbin/policy-rc.d
