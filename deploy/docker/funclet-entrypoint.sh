#!/bin/sh
# Entry point of the funclet image. funclet finds its own cgroup in /proc/self/cgroup and creates
# the containers' cgroups below <mount point>/<that path>. A container engine that keeps the
# host's cgroup namespace (podman and docker on cgroup v1 by default, docker-compose v1 always,
# Kubernetes on v1) shows the host path there, say /libpod_parent/libpod-X, but mounts only that
# cgroup at /sys/fs/cgroup/<controller>: the path would then be applied twice. A new cgroup
# namespace rooted at the current cgroup makes both views agree ("/" and the mounted cgroup), so
# funclet is started in one whenever a cgroup file system is mounted from below its root.
# With a private cgroup namespace (or a full mount) nothing changes and funclet is started as is.
set -eu

funclet=/usr/local/bin/easyfaas-funclet

die() {
  echo "easyfaas-funclet-entrypoint: $*" >&2
  exit 1
}

case "${1:-}" in -h | --help) exec "$funclet" "$@" ;; esac

# Without these, funclet would fail later with a less telling message about a mount or a cgroup.
cap_eff=$(awk '/^CapEff:/ { print $2 }' /proc/self/status)
[ $(((0x$cap_eff >> 21) & 1)) -eq 1 ] ||
  die "funclet needs CAP_SYS_ADMIN and more: run its container privileged (privileged: true)"
if awk '{ for (i = 7; i <= NF; i++) if ($i == "-") break
          if (($(i + 1) == "cgroup" || $(i + 1) == "cgroup2") && $5 ~ "^/sys/fs/cgroup" &&
              $6 ~ /(^|,)ro(,|$)/) found = 1 }
        END { exit !found }' /proc/self/mountinfo; then
  die "the cgroup file system is mounted read-only: run funclet's container privileged (privileged: true)"
fi

# Field 4 of mountinfo is the root of the mount within its file system, field 5 the mount point;
# the file system type follows the " - " separator.
subtree=$(awk '{
    for (i = 7; i <= NF; i++) if ($i == "-") break
    type = $(i + 1)
    if ((type == "cgroup" || type == "cgroup2") && $5 ~ "^/sys/fs/cgroup" && $4 != "/") { print $5; exit }
  }' /proc/self/mountinfo)

if [ -n "$subtree" ]; then
  exec unshare --cgroup -- "$funclet" "$@"
fi
exec "$funclet" "$@"
