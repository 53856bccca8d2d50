"""colab_bootstrap/sshd/listeners.py: this machine's colabssh sshd listeners, found through /proc."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

from colab_bootstrap.sshd.config import CONFIG_NAME, HEADER, SNIPPET_COMMENT
from colab_bootstrap.sshd.listeners import listener_config, snippet_in_use


def test_a_listener_whose_config_is_gone_no_longer_keeps_the_login_snippet(tmp_path: Path) -> None:
    # a leftover sshd (its state folder deleted under it) must not keep /etc/profile.d's snippet for ever
    snippet = tmp_path / "profile.d" / "colabssh-env.sh"
    config = tmp_path / "state" / CONFIG_NAME
    config.parent.mkdir()
    config.write_text(f"{HEADER}\n{SNIPPET_COMMENT}{snippet}\nPort 2222\n")
    fake_sshd = shlex.join([sys.executable, "-c", "import sys; print('ready', flush=True); sys.stdin.read()",
                            "-D", "-f", str(config)])
    child = subprocess.Popen(["bash", "-c", f"exec -a {shlex.quote(str(tmp_path / 'sshd'))} {fake_sshd}"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline() == "ready\n"
        assert listener_config(child.pid) == config
        assert snippet_in_use(snippet)
        assert not snippet_in_use(tmp_path / "another-snippet.sh")
        config.unlink()
        assert not snippet_in_use(snippet)
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait(timeout=30)
