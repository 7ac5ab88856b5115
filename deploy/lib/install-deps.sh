#!/usr/bin/env bash
# Installs the Debian packages EasyFaaS needs, only when some are missing.
#   install-deps.sh build    what building and running the pod needs
#   install-deps.sh test     that plus what the test suite uses
set -euo pipefail

build_pkgs=(
  gcc make cmake pkg-config
  libuv1-dev libcjson-dev libcgroup-dev libmnl-dev libseccomp-dev
  libsqlite3-dev libzip-dev libssl-dev node-llhttp
  python3 nodejs curl ca-certificates zip
)
test_pkgs=(
  libcmocka-dev clang-format zip unzip procps iproute2 valgrind
  awscli python3-boto3 prometheus
  podman runc catatonit containernetworking-plugins iptables docker-compose debootstrap python3-yaml
)

pkgs=("${build_pkgs[@]}")
if [ "${1:-build}" = test ]; then
  pkgs+=("${test_pkgs[@]}")
fi

missing=()
for p in "${pkgs[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: missing Debian packages: ${missing[*]} (run as root to install them)" >&2
  exit 1
fi
echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
