#!/usr/bin/env bash
# Makes the local base image of the EasyFaaS images from `debootstrap` output, so that they build
# on a machine that reaches only a Debian package mirror (no container registry): Debian minbase
# plus what the language runtimes need (python3, nodejs) and what the probes use (curl). The
# mirror and its security/updates companions are read from this machine's apt sources.
# The image is kept: a second run returns at once unless --force is given.
set -euo pipefail

usage() {
  cat <<USAGE
Usage: deploy/docker/make-base-image.sh [options]

Options:
  --tag TAG        image to create (default localhost/easyfaas-base:SUITE)
  --suite SUITE    Debian release (default: this machine's, from /etc/os-release)
  --mirror URL     Debian mirror (default: the first one in this machine's apt sources)
  --engine NAME    podman or docker (default: podman if installed, else docker)
  --force          rebuild even when the image already exists
  -h, --help       this text

Prints the image's tag on stdout. Needs root (debootstrap).
USAGE
}

say() { echo "make-base-image: $*" >&2; }
die() {
  say "$*"
  exit 1
}

suite=
mirror=
tag=
engine=${EF_ENGINE:-}
force=0
while [ $# -gt 0 ]; do
  case "$1" in
    --tag) tag=${2:?--tag needs a value}; shift 2 ;;
    --suite) suite=${2:?--suite needs a value}; shift 2 ;;
    --mirror) mirror=${2:?--mirror needs a value}; shift 2 ;;
    --engine) engine=${2:?--engine needs a value}; shift 2 ;;
    --force) force=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown option '$1'; see --help" ;;
  esac
done

if [ -z "$suite" ]; then
  # shellcheck disable=SC1091
  suite=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
  [ -n "$suite" ] || die "cannot tell this machine's Debian release; pass --suite"
fi
case "$suite" in *[!a-z0-9-]* | '') die "--suite must be a Debian release name such as bookworm" ;; esac
tag=${tag:-localhost/easyfaas-base:$suite}

if [ -z "$engine" ]; then
  if command -v podman >/dev/null; then engine=podman; else engine=docker; fi
fi
command -v "$engine" >/dev/null || die "neither podman nor docker is installed"
engine_cmd=("$engine")
# crun refuses cgroup v1 hybrid hosts; runc works on both.
[ "$engine" = podman ] && command -v runc >/dev/null && engine_cmd+=(--runtime runc)

if [ $force -eq 0 ] && "${engine_cmd[@]}" image inspect "$tag" >/dev/null 2>&1; then
  say "$tag already exists (--force rebuilds it)"
  echo "$tag"
  exit 0
fi
[ "$(id -u)" -eq 0 ] || die "debootstrap needs root"
command -v debootstrap >/dev/null || die "debootstrap is missing (apt-get install debootstrap)"

# The apt sources exactly as apt reads them: sources.list, sources.list.d/*.list (one-line style)
# and sources.list.d/*.sources (deb822). Prints "URI SUITE COMPONENTS SIGNED-BY" per suite of
# every enabled `deb` entry.
apt_entries() {
  local f
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    awk '
      /^[ \t]*deb[ \t]/ {
        i = 2; signed = "-"
        if ($2 ~ /^\[/) {
          for (; i <= NF; i++) {
            if ($i ~ /signed-by=/) { s = $i; sub(/.*signed-by=/, "", s); sub(/\]$/, "", s); signed = s }
            if ($i ~ /\]$/) { i++; break }
          }
        }
        comps = ""
        for (j = i + 2; j <= NF; j++) comps = comps (comps ? "," : "") $j
        print $i, $(i + 1), (comps ? comps : "main"), signed
      }' "$f"
  done
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    awk '
      function flush() {
        if (types ~ /(^| )deb( |$)/ && enabled != "no")
          for (u = 1; u <= nu; u++) for (s = 1; s <= ns; s++) print uris[u], suites[s], comps, signed
        types = ""; enabled = ""; nu = 0; ns = 0; comps = "main"; signed = "-"
      }
      BEGIN { comps = "main"; signed = "-" }
      /^[ \t]*#/ { next }
      /^[ \t]*$/ { flush(); next }
      {
        key = $1; sub(/:$/, "", key); key = tolower(key)
        val = $0; sub(/^[^:]*:[ \t]*/, "", val)
        if (key == "types") types = val
        else if (key == "enabled") enabled = tolower(val)
        else if (key == "uris") nu = split(val, uris, /[ \t]+/)
        else if (key == "suites") ns = split(val, suites, /[ \t]+/)
        else if (key == "components") { comps = val; gsub(/[ \t]+/, ",", comps) }
        else if (key == "signed-by") signed = val
      }
      END { flush() }' "$f"
  done
}

# Debian's own entries for this release: the suite itself, -updates and -security, signed by the
# Debian archive keyring (or by apt's default keyring). Anything else needs keys the image lacks.
debian_entries=$(apt_entries | awk -v suite="$suite" '
  ($2 == suite || $2 == suite "-updates" || $2 == suite "-security" || $2 == suite "/updates") &&
  ($4 == "-" || $4 ~ /debian-archive-keyring/) { print $1, $2, $3 }' | awk '!seen[$0]++')
if [ -z "$mirror" ]; then
  mirror=$(awk -v suite="$suite" '$2 == suite { print $1; exit }' <<<"$debian_entries")
  [ -n "$mirror" ] || die "no '$suite' entry in the apt sources; pass --mirror URL"
fi
if ! awk -v suite="$suite" '$2 == suite { f = 1 } END { exit !f }' <<<"$debian_entries"; then
  debian_entries="$mirror $suite main"
fi

work=$(mktemp -d /var/tmp/easyfaas-base.XXXXXX)
root=$work/root
cleanup() {
  local rc=$?
  # debootstrap mounts /proc and /sys in the target while it works; an interrupted run may
  # leave them.
  if grep -q " $root" /proc/self/mountinfo 2>/dev/null; then
    grep " $root" /proc/self/mountinfo | awk '{print $5}' | sort -r | while read -r m; do
      umount -l "$m" 2>/dev/null || true
    done
  fi
  rm -rf "$work"
  exit $rc
}
trap cleanup EXIT

say "debootstrap $suite from $mirror into $root (a few minutes)"
debootstrap --variant=minbase --include=python3,nodejs,curl,ca-certificates \
  "$suite" "$root" "$mirror" >"$work/debootstrap.log" 2>&1 || {
  tail -n 30 "$work/debootstrap.log" >&2
  die "debootstrap failed"
}

# The image's apt sources are this machine's Debian ones, so later stages install from the same
# mirror; then the release is brought up to date from -updates and -security.
rm -f "$root/etc/apt/sources.list"
{
  while read -r uri s comps; do
    printf 'Types: deb\nURIs: %s\nSuites: %s\nComponents: %s\n' "$uri" "$s" "${comps//,/ }"
    printf 'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n'
  done <<<"$debian_entries"
} >"$root/etc/apt/sources.list.d/debian.sources"
cat >"$root/etc/apt/apt.conf.d/90easyfaas" <<'APT'
// Small images: no recommended packages, no caches kept.
APT::Install-Recommends "false";
APT::Install-Suggests "false";
Acquire::Languages "none";
APT
cp /etc/resolv.conf "$root/etc/resolv.conf"
say "updating from $(awk '{print $2}' <<<"$debian_entries" | paste -sd' ')"
chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive \
  sh -c 'apt-get update -qq && apt-get upgrade -y -qq >/dev/null && apt-get clean' \
  >"$work/upgrade.log" 2>&1 || {
  tail -n 30 "$work/upgrade.log" >&2
  die "apt-get upgrade in the new root failed"
}
# What the engine provides at run time, and caches, do not belong in the image.
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb \
  "$root"/var/log/*.log "$root"/var/log/apt/* "$root"/tmp/* "$root"/root/.cache
: >"$root/etc/resolv.conf"
: >"$root/etc/hostname"

say "importing as $tag"
tar --numeric-owner --xattrs -C "$root" -c . |
  "${engine_cmd[@]}" import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["/bin/bash"]' \
    --message "Debian $suite minbase with python3, nodejs, curl (EasyFaaS base)" \
    - "$tag" >/dev/null 2>"$work/import.log" || {
    cat "$work/import.log" >&2
    die "importing the root file system failed"
  }
say "done: $tag"
echo "$tag"
