#!/usr/bin/env bash
# Set everything up, then run colabssh's whole journey on this machine against a throwaway local runtime.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/colabssh try "$@"
