#!/usr/bin/env bash
# Installs the Debian packages the build, the tests and the local broker need, only when some are missing.
# As root it runs apt-get (noninteractive); otherwise it prints what to install and fails.
set -euo pipefail

# time: GNU time, with which the tests measure the peak memory of the CLI's error-queue commands.
packages=(librabbitmq-dev libsqlite3-dev rabbitmq-server pkg-config openssl time)

missing=()
for package in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$package" 2>/dev/null || true)
  case "$status" in *" installed") ;; *) missing+=("$package") ;; esac
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" != 0 ]; then
  echo "missing packages: ${missing[*]}" >&2
  echo "install them as root:  sudo apt-get install -y ${missing[*]}" >&2
  if [[ " ${missing[*]} " == *" rabbitmq-server "* ]]; then
    # Installed that way, Debian starts and enables the package's own service on 5672 (every interface),
    # where `make broker` starts its 127.0.0.1-only node: running as root, this script prevents that.
    echo "then stop the package's own broker service:  sudo systemctl disable --now rabbitmq-server" >&2
  fi
  exit 1
fi

echo "installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# Keep the package's own rabbitmq-server service from starting: it would listen on 5672 on every interface,
# where scripts/broker.sh starts its 127.0.0.1-only node. policy-rc.d is Debian's switch for that.
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' > "$policy"
  chmod 755 "$policy"
  trap 'rm -f "$policy"' EXIT
fi
apt-get update -qq < /dev/null
apt-get install -y -qq --no-install-recommends "${missing[@]}" < /dev/null
