#!/usr/bin/env bash
# Set everything up, then run the linters and the whole test suite (real sshd, ssh, rsync, torch on the CPU).
# --fast: only the fast tier (pytest -m "not slow": no runtime started, no torch, no end-to-end journey).
# Any other argument goes to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
tier=()
args=()
for arg in "$@"; do
    if [ "$arg" = "--fast" ]; then tier=(-m "not slow"); else args+=("$arg"); fi
done
scripts/setup.sh --with-tests
.venv/bin/ruff check colabssh_cli colab_bootstrap tests benchmarks scripts
.venv/bin/mypy colabssh_cli colab_bootstrap
.venv/bin/python -m pytest -q -p no:cacheprovider ${tier[@]+"${tier[@]}"} ${args[@]+"${args[@]}"} </dev/null
