"""A `--via colab-cli` session never makes colab leave (or create) a billable runtime behind colabssh's back.

OpenSSH's ConnectTimeout covers the banner exchange and, when it runs out, ends the ProxyCommand: a colab that was
still creating the runtime would be cut off mid-way, leaving a runtime that `colab stop -s NAME` no longer finds.
So a colab-cli Host block has no ConnectTimeout, and `doctor` never connects to a session whose runtime is gone
(colab would create a new one).
"""

from __future__ import annotations

import subprocess

from colabssh_cli.app import main
from colabssh_cli.paths import Paths
from colabssh_cli.remote.runner import close_shared_connection
from tests.cli.connection.test_colab_cli import colab_road, via_colab  # noqa: F401  (fixtures)
from tests.cli.sshconfig.test_support import ssh_g


def test_a_colab_cli_block_has_no_connect_timeout(via_colab, isolated_home):  # noqa: F811
    paths = Paths.from_env()
    assert "ConnectTimeout" not in paths.config.read_text()
    assert ssh_g(paths.user_config)["connecttimeout"] == ["none"]


def test_doctor_does_not_connect_to_a_colab_session_whose_runtime_is_gone(via_colab, capsys):  # noqa: F811
    import json

    paths = Paths.from_env()
    close_shared_connection(paths, "colab")
    via_colab.wait_until_free()
    subprocess.run([str(via_colab.exe), "stop", "-s", via_colab.session], check=True, capture_output=True,
                   stdin=subprocess.DEVNULL)
    assert via_colab.runtimes() == []
    asked = len(via_colab.events("connected"))
    capsys.readouterr()
    main(["doctor", "--json"])
    checks = {c["name"]: c for c in json.loads(capsys.readouterr().out)["checks"]}
    reach = checks["reach colab"]
    assert reach["status"] == "warn" and "does not list a runtime" in reach["detail"]
    assert f"--session {via_colab.session} --name colab" in reach["fix"]
    assert via_colab.runtimes() == []  # no runtime was created for the check
    assert len(via_colab.events("connected")) == asked
