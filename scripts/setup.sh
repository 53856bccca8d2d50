#!/usr/bin/env bash
# Set up everything colabssh needs on a Debian/Ubuntu machine: OpenSSH (client and server) and rsync
# (through apt, when missing and running as root), a virtual environment in .venv with colabssh in it.
# Safe to run again: it installs only what is missing.   Usage: scripts/setup.sh [--with-tests]
# Every step that can take more than a few seconds says what it installs, how big and how long it takes,
# and says it is still at work every 10 s (scripts/progress.sh), so a first run (about 2 minutes) is never silent.
set -euo pipefail
cd "$(dirname "$0")/.."

. scripts/progress.sh   # say, step

missing=()
command -v ssh >/dev/null 2>&1 || missing+=(openssh-client)
{ command -v sshd >/dev/null 2>&1 || [ -x /usr/sbin/sshd ]; } || missing+=(openssh-server)
command -v rsync >/dev/null 2>&1 || missing+=(rsync)
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || missing+=(python3-venv)
apt_install() {
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq </dev/null >/dev/null
    apt-get install -y -qq "$@" </dev/null >/dev/null
}
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
        step "installing ${missing[*]} with apt-get (a few MiB; under a minute)" apt_install "${missing[@]}"
    else
        echo "setup: error: missing ${missing[*]}" >&2
        echo "  hint: sudo apt-get install ${missing[*]}   (then run this again)" >&2
        exit 1
    fi
fi

if [ ! -x .venv/bin/python ]; then
    step "creating the virtual environment .venv (with pip in it; about 10 s)" python3 -m venv .venv
fi
pip_install() { .venv/bin/python -m pip install -q --disable-pip-version-check "$@" </dev/null; }
if [ "${1:-}" = "--with-tests" ]; then
    step "installing colabssh and what it uses (typer, rich, paramiko, pyngrok) with the test tools (pytest, ruff, mypy, nbformat) into .venv (about 60 MiB; under a minute)" \
        pip_install -e ".[test,dev]"
else
    step "installing colabssh and what it uses (typer, rich, paramiko, pyngrok) into .venv (about 15 MiB; about 10 s)" \
        pip_install -e .
fi
if ! .venv/bin/python -c 'import torch' >/dev/null 2>&1; then
    step "installing torch 2.13.0, CPU build, for the demo (a 183 MiB download, 750 MiB installed; about a minute)" \
        pip_install torch==2.13.0 \
        || say "torch could not be installed; the demo will say so and the rest works"
fi
say "ready: .venv/bin/colabssh (add it to your PATH: export PATH=\"$PWD/.venv/bin:\$PATH\")"
