#!/usr/bin/env bash
# Set everything up, then run the linters and the whole test suite (real sshd, ssh, rsync, torch on the CPU).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --with-tests
.venv/bin/ruff check colabssh_cli colab_bootstrap tests benchmarks scripts
.venv/bin/mypy colabssh_cli colab_bootstrap
.venv/bin/python -m pytest -q -p no:cacheprovider "$@" </dev/null
