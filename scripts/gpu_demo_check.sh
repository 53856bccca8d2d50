#!/usr/bin/env bash
# The GPU acceptance check of `colabssh demo --gpu` (issue 5; docs/demo.md), on a Linux machine with
# an NVIDIA GPU and OpenSSH (sshd, ssh, ssh-keygen). It does what a user does, against this machine:
#
#   1. the machine's python3 (a CUDA torch it already has is used as it is), with whatever is missing
#      pip-installed into a temp folder (torch: from PyPI, a CUDA build of a few GB; or from WHEELS=DIR
#      without the network);
#   2. the very cell `colabssh bootstrap --tunnel local` prints, run as `python cell.py`: its own
#      key-only sshd on 127.0.0.1, state in a temp folder; HOME is a temp folder too, so ~/.ssh,
#      the system's sshd and /etc/profile.d are never touched;
#   3. `colabssh connect CODE --no-open`, then `colabssh demo --gpu` (the table), and
#      `ssh ALIAS python3 -c 'import torch; print(torch.cuda.is_available())'` through the written config;
#   4. stops everything it started and removes the temp folder.
#
# Usage, from anywhere:   scripts/gpu_demo_check.sh            (exit 0: every check passed, CUDA seen over SSH)
#   PYTHON=python3.12     the python to use (default: python3)
#   WHEELS=DIR            install missing packages only from the wheels in DIR (a machine without internet)
#   DEMO_JSON=FILE        also run `colabssh demo --gpu --json` and write its document to FILE
#   KEEP=1                keep the temp folder (logs, cell, config) for a look afterwards
#
# On a machine without internet, fetch the wheels on one that has it (for that machine's python):
#   scripts/gpu_demo_check.sh --fetch-wheels DIR [PYTHON_VERSION, default 3.12]
# e.g. the lent GPU machines: python 3.12 with torch, typer and rich already there, paramiko missing.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
NEEDED=(paramiko typer rich)  # with their dependencies; torch is not fetched (use the machine's)

if [[ "${1:-}" == "--fetch-wheels" ]]; then
    dest=${2:?usage: $0 --fetch-wheels DIR [PYTHON_VERSION]}
    version=${3:-3.12}
    mkdir -p "$dest"
    platforms=()
    for n in 17 27 28 34; do platforms+=(--platform "manylinux_2_${n}_x86_64"); done
    python3 -m pip download --quiet --only-binary=:all: --python-version "$version" --implementation cp \
        "${platforms[@]}" --platform manylinux2014_x86_64 -d "$dest" "${NEEDED[@]}"
    echo "wheels for python $version in $dest:"
    ls "$dest"
    exit 0
fi

say() { printf '\n=== %s\n' "$*"; }
die() { printf 'gpu_demo_check: %s\n' "$*" >&2; exit "${2:-1}"; }

say "machine"
command -v nvidia-smi >/dev/null || die "no nvidia-smi: this check needs a machine with an NVIDIA GPU" 4
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
for tool in ssh ssh-keygen; do command -v "$tool" >/dev/null || die "$tool is missing: install openssh-client" 4; done
sshd=$(PATH="$PATH:/usr/sbin:/usr/local/sbin" command -v sshd || true)
[[ -n "$sshd" ]] || die "sshd is missing: install openssh-server (apt-get install openssh-server)" 4
echo "ssh: $(ssh -V 2>&1); sshd: $sshd; user: $(id -un)"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/colabssh-gpu.XXXXXX")
chmod 700 "$WORK"
CELL_PID=""
cleanup() {
    if [[ -f "$WORK/home/.ssh/config" ]]; then  # the alias's shared connection, then the runtime
        ssh -F "$WORK/home/.ssh/config" -O exit gpu 2>/dev/null || true
    fi
    if [[ -n "$CELL_PID" ]] && kill -0 "$CELL_PID" 2>/dev/null; then
        kill -TERM "$CELL_PID" 2>/dev/null || true
        wait "$CELL_PID" 2>/dev/null || true
    fi
    if [[ "${KEEP:-}" == 1 ]]; then echo "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

say "python environment"
# The python that has (or gets) torch runs everything, as on Colab the kernel's python does. Missing
# packages go into a folder of their own on PYTHONPATH, not into a venv: a venv made from a python
# that is itself a venv (as on the lent GPU machines) would not see that venv's CUDA torch.
PY=$(command -v "${PYTHON:-python3}") || die "no ${PYTHON:-python3} on PATH" 4
PY="$(cd "$(dirname "$PY")" && pwd)/$(basename "$PY")"  # absolute, symlinks kept (a venv's python is one)
missing=()
for module in torch typer rich paramiko; do
    "$PY" -c "import $module" 2>/dev/null || missing+=("$module")
done
if ((${#missing[@]})); then
    echo "installing into $WORK/site: ${missing[*]}"
    if [[ -n "${WHEELS:-}" ]]; then
        "$PY" -m pip install --quiet --target "$WORK/site" --no-index --find-links "$WHEELS" "${missing[@]}"
    else
        "$PY" -m pip install --quiet --target "$WORK/site" "${missing[@]}"  # torch from PyPI: a large CUDA build
    fi
fi
# The project runs from this checkout (no install step, so nothing to build offline). SSH sessions get
# PATH and PYTHONPATH from the cell's environment, so `python3` over ssh is this python, with torch.
export HOME="$WORK/home" PYTHONPATH="$WORK/site:$ROOT${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export PATH="$(dirname "$PY"):$PATH"
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
