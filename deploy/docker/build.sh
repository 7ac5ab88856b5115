#!/usr/bin/env bash
# Builds the three EasyFaaS images with podman or docker, whichever is installed:
#   localhost/easyfaas-controller, localhost/easyfaas-funclet, localhost/easyfaas-runner-runtime
# (tag :latest unless --tag says otherwise), and localhost/easyfaas-build (the compile stage, kept
# as the cache of the next build); the untagged images of earlier builds are pruned. Without
# --base, the local Debian base image of make-base-image.sh is made first if it does not exist
# yet (it is kept for later builds).
set -euo pipefail

usage() {
  cat <<USAGE
Usage: deploy/docker/build.sh [options]

Options:
  --base IMAGE     base of every stage (default: localhost/easyfaas-base:bookworm, made from
                   debootstrap output when missing; e.g. debian:bookworm-slim from a registry)
  --tag TAG        tag of the three images (default latest)
  --engine NAME    podman or docker (default: podman if installed, else docker)
  --jobs N         parallel compile jobs in the build stage (default 2)
  --only NAMES     comma-separated subset of controller,funclet,runner-runtime
  -h, --help       this text
USAGE
}

say() { echo "build: $*" >&2; }
die() {
  say "$*"
  exit 1
}

src=$(cd "$(dirname "$0")/../.." && pwd)
base=
tag=latest
engine=${EF_ENGINE:-}
jobs=2
only=controller,funclet,runner-runtime
while [ $# -gt 0 ]; do
  case "$1" in
    --base) base=${2:?--base needs a value}; shift 2 ;;
    --tag) tag=${2:?--tag needs a value}; shift 2 ;;
    --engine) engine=${2:?--engine needs a value}; shift 2 ;;
    --jobs) jobs=${2:?--jobs needs a value}; shift 2 ;;
    --only) only=${2:?--only needs a value}; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown option '$1'; see --help" ;;
  esac
done
case "$jobs" in '' | *[!0-9]* | 0) die "--jobs must be a positive number" ;; esac
case "$tag" in '' | *[!A-Za-z0-9_.-]*) die "--tag may hold only letters, digits, '_', '.', '-'" ;; esac
IFS=, read -r -a targets <<<"$only"
for t in "${targets[@]}"; do
  case "$t" in controller | funclet | runner-runtime) ;; *) die "unknown image '$t' in --only" ;; esac
done

if [ -z "$engine" ]; then
  if command -v podman >/dev/null; then engine=podman; else engine=docker; fi
fi
command -v "$engine" >/dev/null || die "neither podman nor docker is installed"
engine_cmd=("$engine")
build_flags=()
if [ "$engine" = podman ]; then
  # crun refuses cgroup v1 hybrid hosts; runc works on every host. The explicit limits keep
  # the build's RUN steps inside what an unprivileged host limit allows.
  command -v runc >/dev/null && engine_cmd+=(--runtime runc)
  build_flags+=(--ulimit nofile=1024:1024 --ulimit nproc=4096:4096)
fi

if [ -z "$base" ]; then
  base=$(EF_ENGINE=$engine "$src/deploy/docker/make-base-image.sh")
fi

# Only the source tree goes into the build context: no .git, no build directories.
ctx=$(mktemp -d "${TMPDIR:-/tmp}/easyfaas-ctx.XXXXXX")
trap 'rm -rf "$ctx"' EXIT
tar -C "$src" --exclude=./.git --exclude='./build*' --exclude=__pycache__ -c . | tar -C "$ctx" -x

# The build stage is tagged too: it is the compile cache of the next build, and being tagged it
# survives the pruning below.
for t in build "${targets[@]}"; do
  image=localhost/easyfaas-$t:$tag
  say "building $image (base $base)"
  start=$SECONDS
  # Low priority: the build competes with the machine's other work.
  nice -n 10 "${engine_cmd[@]}" build "${build_flags[@]}" \
    --build-arg "BASE=$base" --build-arg "JOBS=$jobs" \
    --target "$t" -t "$image" -f "$ctx/deploy/docker/Containerfile" "$ctx" >&2 ||
    die "building $image failed"
  say "built $image in $((SECONDS - start)) s"
done

# Each source change leaves the previous build stage and images untagged; they are of no further
# use (the tagged ones above hold every cached layer still needed).
"${engine_cmd[@]}" image prune -f --filter label=io.easyfaas.build=1 >/dev/null 2>&1 ||
  say "could not prune the untagged images of earlier builds"
