#!/usr/bin/env bash
# The GPU acceptance check of `colabssh demo --gpu` (issue 5; docs/demo.md), on a Linux x86-64 machine
# with an NVIDIA GPU. It does what a user does, against this machine:
#
#   1. the machine's python3 (a CUDA torch it already has is used as it is), with whatever is missing
#      pip-installed into a temp folder (torch from PyPI is a CUDA build of a few GiB);
#   2. the very cell `colabssh bootstrap --tunnel local` prints, run as `python cell.py`: its own
#      key-only sshd on 127.0.0.1, state in a temp folder; HOME is a temp folder too, so ~/.ssh,
#      the system's sshd and /etc/profile.d are never touched;
#   3. `colabssh connect CODE --no-open`, then `colabssh demo --gpu` (the table), and
#      `ssh ALIAS python3 -c 'import torch; print(torch.cuda.is_available())'` through the written config;
#   4. stops everything it started and removes the temp folder.
#
# Usage:  scripts/gpu_demo_check.sh        exit 0: every check passed and CUDA was seen over SSH
#   PYTHON=python3.12   the python to use (default: python3)
#   BUNDLE=DIR          a machine without internet: paramiko, typer and rich from DIR/wheels (the machine's
#                       torch is used), OpenSSH from the packages in DIR/debs (unpacked into the temp folder;
#                       as root it adds the user sshd's privilege separation needs, and removes it after)
#   DEMO_JSON=FILE      also run `colabssh demo --gpu --json` and write its document to FILE
#   KEEP=1              keep the temp folder (logs, cell, config) for a look afterwards
#
# Make the bundle on a Debian/Ubuntu x86-64 machine that has the internet (or package registries):
#   scripts/gpu_demo_check.sh --fetch DIR [PYTHON_VERSION, default 3.12]
# DIR/wheels: paramiko, typer, rich and their dependencies for that python (torch is not fetched);
# DIR/debs: Debian's openssh-client and openssh-server and the libraries they load (not the C library).
# The lent GPU machines have python 3.12 with a CUDA torch, typer and rich, but no paramiko and no OpenSSH.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OPENSSH_TOOLS=(usr/bin/ssh usr/bin/ssh-keygen usr/sbin/sshd)

say() { printf '\n=== %s\n' "$*"; }
die() { printf 'gpu_demo_check: %s\n' "$*" >&2; exit "${2:-1}"; }

fetch_bundle() {  # DIR PYTHON_VERSION
    local dest version unpacked platforms=() libs packages
    dest=$(mkdir -p "$1" && cd "$1" && pwd); version=$2
    mkdir -p "$dest/wheels" "$dest/debs"
    for n in 17 27 28 34; do platforms+=(--platform "manylinux_2_${n}_x86_64"); done
    python3 -m pip download --quiet --only-binary=:all: --python-version "$version" --implementation cp \
        "${platforms[@]}" --platform manylinux2014_x86_64 -d "$dest/wheels" paramiko 'typer>=0.28,<0.29' 'rich>=13.8,<16'
    (cd "$dest/debs" && apt-get download openssh-client openssh-server)
    unpacked=$(mktemp -d)
    for deb in "$dest"/debs/*.deb; do dpkg-deb -x "$deb" "$unpacked"; done
    libs=$(for tool in "${OPENSSH_TOOLS[@]}"; do ldd "$unpacked/$tool"; done | awk '$2 == "=>" && $3 ~ /^\// {print $3}' | sort -u)
    packages=$(for lib in $libs; do dpkg -S "*/$(basename "$lib")" 2>/dev/null | head -n 1 | cut -d: -f1; done \
               | sort -u | grep -v -x -e libc6 -e libgcc-s1)
    # shellcheck disable=SC2086  # one package name per word
    (cd "$dest/debs" && apt-get download $packages)
    rm -rf "$unpacked"
    echo "bundle in $dest:"; ls "$dest/wheels" "$dest/debs"
}

private_openssh() {  # DEBS_DIR: unpack OpenSSH into $WORK/openssh; wrappers on PATH supply only missing libraries
    local base=$WORK/openssh round lib found
    mkdir -p "$base/root" "$base/lib" "$base/bin"
    for deb in "$1"/*.deb; do dpkg-deb -x "$deb" "$base/root"; done
    for round in 1 2 3 4 5; do  # a library brought in may itself need one this machine lacks
        missing=$(for tool in "${OPENSSH_TOOLS[@]}"; do LD_LIBRARY_PATH="$base/lib" ldd "$base/root/$tool"; done \
                  | awk '/not found/ {print $1}' | sort -u)
        [[ -z "$missing" ]] && break
        for lib in $missing; do
            found=$(find "$base/root" -name "$lib" | head -n 1)
            [[ -n "$found" ]] || die "OpenSSH needs $lib, which neither this machine nor the bundle has" 4
            cp -L "$found" "$base/lib/"
        done
        echo "supplied to OpenSSH (round $round): $missing"
    done
    for tool in "${OPENSSH_TOOLS[@]}"; do
        printf '#!/bin/sh\nLD_LIBRARY_PATH=%s exec %s "$@"\n' "$base/lib" "$base/root/$tool" >"$base/bin/${tool##*/}"
        chmod 755 "$base/bin/${tool##*/}"
    done
    export PATH="$base/bin:$PATH"
    if ! getent passwd sshd >/dev/null; then  # sshd's privilege separation runs as this user
        [[ $(id -u) == 0 ]] || die "sshd needs a user named sshd; as root this script would add one" 4
        useradd --system --no-create-home --home-dir /run/sshd --shell /usr/sbin/nologin sshd
        ADDED_SSHD_USER=1
    fi
}

if [[ "${1:-}" == "--fetch" ]]; then
    fetch_bundle "${2:?usage: $0 --fetch DIR [PYTHON_VERSION]}" "${3:-3.12}"
    exit 0
fi

say "machine"
command -v nvidia-smi >/dev/null || die "no nvidia-smi: this check needs a machine with an NVIDIA GPU" 4
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader

WORK=$(mktemp -d "${TMPDIR:-/tmp}/colabssh-gpu.XXXXXX")
chmod 700 "$WORK"
CELL_PID="" ADDED_SSHD_USER=""
cleanup() {
    if [[ -f "$WORK/home/.ssh/config" ]]; then  # the alias's shared connection, then the runtime
        ssh -F "$WORK/home/.ssh/config" -O exit gpu 2>/dev/null || true
    fi
    if [[ -n "$CELL_PID" ]] && kill -0 "$CELL_PID" 2>/dev/null; then
        kill -TERM "$CELL_PID" 2>/dev/null || true
        wait "$CELL_PID" 2>/dev/null || true
    fi
    if [[ -n "$ADDED_SSHD_USER" ]]; then userdel sshd 2>/dev/null || true; fi
    if [[ "${KEEP:-}" == 1 ]]; then echo "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

if [[ -n "${BUNDLE:-}" ]]; then
    private_openssh "$BUNDLE/debs"
fi
for tool in ssh ssh-keygen; do
    command -v "$tool" >/dev/null || die "$tool is missing: install openssh-client, or pass BUNDLE=DIR (see --fetch)" 4
done
sshd=$(PATH="$PATH:/usr/sbin:/usr/local/sbin" command -v sshd || true)
[[ -n "$sshd" ]] || die "sshd is missing: install openssh-server, or pass BUNDLE=DIR (see --fetch)" 4
echo "ssh: $(ssh -V 2>&1); sshd: $sshd; user: $(id -un)"

say "python environment"
# The python that has (or gets) torch runs everything, as on Colab the kernel's python does. Missing
# packages go into a folder of their own on PYTHONPATH, not into a venv: a venv made from a python
# that is itself a venv (as on the lent GPU machines) would not see that venv's CUDA torch.
PY=$(command -v "${PYTHON:-python3}") || die "no ${PYTHON:-python3} on PATH" 4
PY="$(cd "$(dirname "$PY")" && pwd)/$(basename "$PY")"  # absolute, symlinks kept (a venv's python is one)
if [[ -n "${BUNDLE:-}" ]]; then  # the versions this checkout was tested with, ahead of the machine's own
    echo "installing into $WORK/site from $BUNDLE/wheels: paramiko typer rich"
    "$PY" -m pip install --quiet --target "$WORK/site" --no-index --find-links "$BUNDLE/wheels" paramiko 'typer>=0.28,<0.29' 'rich>=13.8,<16'
    "$PY" -c "import torch" 2>/dev/null || die "$PY has no torch; the bundle carries none" 4
else
    missing=()
    for module in torch typer rich paramiko; do
        "$PY" -c "import $module" 2>/dev/null || missing+=("$module")
    done
    if ((${#missing[@]})); then
        echo "installing into $WORK/site: ${missing[*]}"
        "$PY" -m pip install --quiet --target "$WORK/site" "${missing[@]}"
    fi
fi
# The project runs from this checkout (no install step, so nothing to build offline). SSH sessions get
# PATH and PYTHONPATH from the cell's environment, so `python3` over ssh is this python, with torch.
# every ssh below gets -F "$HOME/.ssh/config", so the temp HOME is the home "OpenSSH reads" (openssh_home.py)
export HOME="$WORK/home" COLABSSH_OPENSSH_HOME="$WORK/home" PYTHONPATH="$WORK/site:$ROOT${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
PATH="$(dirname "$PY"):$PATH"
export PATH
"$PY" - <<'EOF_PY'
import sys, torch
print(f"python {sys.version.split()[0]} ({sys.executable}); torch {torch.__version__}; "
      f"CUDA in this process: {torch.cuda.is_available()}")
EOF_PY
mkdir -p "$HOME" "$WORK/drive"
colabssh() { "$PY" -m colabssh_cli "$@"; }

say "the runtime: the printed cell, local tunnel"
colabssh bootstrap --tunnel local --out "$WORK/cell.py"
COLABSSH_STATE="$WORK/state" COLABSSH_CONTENT="$WORK/content" COLABSSH_DRIVE="$WORK/drive" \
    COLABSSH_PORT=0 COLABSSH_PROFILE_D="" COLABSSH_SSHD="$sshd" \
    "$PY" "$WORK/cell.py" >"$WORK/cell.log" 2>&1 &
CELL_PID=$!
code=""
for _ in $(seq 1 600); do  # up to 60 s for the connect line
    code=$(sed -n 's/^colabssh connect //p' "$WORK/cell.log" | head -n 1)
    [[ -n "$code" ]] && break
    kill -0 "$CELL_PID" 2>/dev/null || break
    sleep 0.1
done
cat "$WORK/cell.log"
[[ -n "$code" ]] || die "the cell printed no connect line"

say "colabssh connect CODE --no-open"
colabssh connect "$code" --no-open --name gpu

say "colabssh demo --gpu --name gpu"
demo_status=0
colabssh demo --gpu --name gpu || demo_status=$?
if [[ -n "${DEMO_JSON:-}" ]]; then
    colabssh demo --gpu --json --name gpu >"$DEMO_JSON" 2>/dev/null || true
    echo "wrote $DEMO_JSON"
fi

say "ssh gpu python3 -c 'import torch; print(torch.cuda.is_available())'  (through the written config)"
probe='import torch; print(torch.cuda.is_available())'
cuda=$(ssh -F "$HOME/.ssh/config" gpu "python3 -c '$probe'") || cuda="no answer (exit $?)"
echo "$cuda"
# the same with the runtime's python named in full (the one `colabssh demo` uses), and where python3 is
cuda_py=$(ssh -F "$HOME/.ssh/config" gpu "$PY -c '$probe'") || cuda_py="no answer (exit $?)"
echo "$PY: $cuda_py; python3 over ssh is $(ssh -F "$HOME/.ssh/config" gpu 'command -v python3' || true)"
ssh -F "$HOME/.ssh/config" gpu nvidia-smi -L || true

say "result"
echo "colabssh demo --gpu exit code: $demo_status; torch.cuda.is_available() over ssh: python3 $cuda, $PY $cuda_py"
[[ "$demo_status" == 0 && "$cuda" == True && "$cuda_py" == True ]] || exit 1
echo "GPU demo check passed"
