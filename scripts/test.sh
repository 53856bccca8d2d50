#!/usr/bin/env bash
# Set everything up, then run the linters and the whole test suite (real sshd, ssh, rsync, torch on the CPU).
# --fast: only the fast tier (pytest -m "not slow": no runtime started, no torch, no end-to-end journey).
# Any other argument goes to pytest. Each stage starts with a heading (== lint ==, == types ==, == tests ==).
# The whole run takes about 8 minutes on a fresh 2-core machine (set-up under 2, tests about 7); --fast about 3.
set -euo pipefail
cd "$(dirname "$0")/.."
tier=()
args=()
for arg in "$@"; do
    if [ "$arg" = "--fast" ]; then tier=(-m "not slow"); else args+=("$arg"); fi
done
stage() { printf '\n== %s ==\n' "$*"; }
stage "set-up (scripts/setup.sh --with-tests)"
scripts/setup.sh --with-tests
stage "lint (ruff)"
.venv/bin/ruff check colabssh_cli colab_bootstrap tests benchmarks scripts
stage "types (mypy)"
.venv/bin/mypy colabssh_cli colab_bootstrap
if [ ${#tier[@]} -gt 0 ]; then
    stage "tests: the fast tier (pytest -m \"not slow\"; about a minute)"
else
    stage "tests: the whole suite (pytest; about 7 minutes on 2 cores, the fast tier alone: scripts/test.sh --fast)"
fi
.venv/bin/python -m pytest -q -p no:cacheprovider ${tier[@]+"${tier[@]}"} ${args[@]+"${args[@]}"} </dev/null
