#!/usr/bin/env bash
# Installs what the tests need, builds with warnings as errors, and runs every test through CTest
# (unit and integration). Integration tests need root; without it they are reported as skipped.
#   tests/run.sh [ctest arguments...]      e.g. tests/run.sh -L unit
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
build=${EF_BUILD_DIR:-$src/build}

"$src/deploy/lib/install-deps.sh" test
cmake -S "$src" -B "$build" -DEF_WERROR=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j"$(nproc)"
cd "$build"
ctest --output-on-failure --timeout 600 "$@"
