#!/bin/bash
# Device check for issue 2: the printed cell on a machine with a real NVIDIA driver.
echo "== machine"; id; uname -r; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
for t in python3 sshd /usr/sbin/sshd ssh ssh-keygen apt-get; do printf '%s: ' $t; command -v $t || echo missing; done
python3 --version; sshd -V 2>&1 | head -1
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())" 2>&1 | tail -1
env | grep -E '^(CUDA|NVIDIA|LD_LIBRARY)' | cut -c1-120
T=$(mktemp -d); ssh-keygen -q -t ed25519 -N "" -f $T/key
export COLABSSH_PUBKEY="$(cat $T/key.pub)" COLABSSH_STATE=$T/state COLABSSH_CONTENT=$T/content COLABSSH_DRIVE=$T COLABSSH_PORT=0 COLABSSH_PROFILE_D= COLABSSH_SSHD=${COLABSSH_SSHD:-}
START=$(date +%s.%N)
python3 -u devcheck_runtime/cell.py > $T/out 2>&1 &
CELL=$!
for i in $(seq 1 300); do grep -q '^colabssh connect ' $T/out && break; kill -0 $CELL 2>/dev/null || break; sleep 0.1; done
END=$(date +%s.%N); echo "== connect line after $(echo "$END - $START" | bc) s"
cat $T/out | cut -c1-200
PORT=$(sed -n 's/^sshd: listening on 127.0.0.1:\([0-9]*\).*/\1/p' $T/out)
if [ -n "$PORT" ]; then
  echo "== through ssh"
  timeout 60 ssh -F /dev/null -i $T/key -o IdentitiesOnly=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o BatchMode=yes -p $PORT $(id -un)@127.0.0.1 \
    'nvidia-smi --query-gpu=name,driver_version --format=csv,noheader; echo "PATH=$PATH"; env | grep -cE "^(CUDA|NVIDIA|LD_LIBRARY)"; python3 -c "import torch; print(\"torch cuda over ssh:\", torch.cuda.is_available())" 2>&1 | tail -1'
  echo "ssh rc=$?"
fi
kill -TERM $CELL; wait $CELL; echo "cell rc=$?"; tail -2 $T/out
pgrep -af "$T/state" || echo "no leftover processes"
