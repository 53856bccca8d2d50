#!/usr/bin/env bash
# Set up everything colabssh needs on a Debian/Ubuntu machine: OpenSSH (client and server) and rsync
# (through apt, when missing and running as root), a virtual environment in .venv with colabssh in it.
# Safe to run again: it installs only what is missing.   Usage: scripts/setup.sh [--with-tests]
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v ssh >/dev/null 2>&1 || missing+=(openssh-client)
{ command -v sshd >/dev/null 2>&1 || [ -x /usr/sbin/sshd ]; } || missing+=(openssh-server)
command -v rsync >/dev/null 2>&1 || missing+=(rsync)
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || missing+=(python3-venv)
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "setup: installing ${missing[*]} with apt-get" >&2
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq </dev/null >/dev/null
        apt-get install -y -qq "${missing[@]}" </dev/null >/dev/null
    else
        echo "setup: error: missing ${missing[*]}" >&2
        echo "  hint: sudo apt-get install ${missing[*]}   (then run this again)" >&2
        exit 1
    fi
fi

if [ ! -x .venv/bin/python ]; then
    echo "setup: creating the virtual environment .venv" >&2
    python3 -m venv .venv
fi
extras=""
[ "${1:-}" = "--with-tests" ] && extras="[test,dev]"
echo "setup: making sure colabssh${extras} is installed in .venv" >&2
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".${extras}" </dev/null
if ! .venv/bin/python -c 'import torch' >/dev/null 2>&1; then
    echo "setup: installing torch (CPU) for the demo" >&2
    .venv/bin/python -m pip install -q --disable-pip-version-check torch==2.13.0 </dev/null \
        || echo "setup: torch could not be installed; the demo will say so and the rest works" >&2
fi
