#!/bin/sh
# Prints, one per line, the Debian packages that hold the shared libraries the given binaries
# load (from ldd and dpkg -S). The build stage runs it so that each final image installs exactly
# the run-time libraries of its binaries, and follows when a program links a new library.
set -eu

[ $# -gt 0 ] || {
  echo "usage: runtime-deps.sh BINARY..." >&2
  exit 2
}

# dpkg knows a library by the path its package ships it at: /lib/... for some packages and
# /usr/lib/... for others on a merged-/usr system, so each candidate spelling is tried.
owner() {
  for p in "$1" "$(readlink -f "$1")" "${1#/usr}" "/usr$1"; do
    pkg=$(dpkg-query -S "$p" 2>/dev/null | head -n 1 | cut -d: -f1) || true
    if [ -n "$pkg" ]; then
      echo "$pkg"
      return 0
    fi
  done
  echo "runtime-deps: no package owns $1" >&2
  return 1
}

libs=$(for bin in "$@"; do
  out=$(ldd "$bin") || {
    echo "runtime-deps: ldd failed on $bin" >&2
    exit 1
  }
  if echo "$out" | grep -q 'not found'; then
    echo "runtime-deps: $bin has unresolved libraries:" >&2
    echo "$out" >&2
    exit 1
  fi
  echo "$out" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }'
done)
pkgs=
for lib in $(echo "$libs" | sort -u); do
  pkgs="$pkgs $(owner "$lib")"
done
printf '%s\n' $pkgs | sort -u
