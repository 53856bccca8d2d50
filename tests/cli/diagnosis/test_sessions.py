"""`colabssh doctor`'s checks of each session: `ssh -G`, the ProxyCommand's program, reaching the runtime."""

from __future__ import annotations

from colabssh_cli.app import main
from colabssh_cli.diagnosis import FAIL, OK, WARN
from colabssh_cli.errors import FAILURE
from colabssh_cli.paths import Paths
from colabssh_cli.remote.runner import close_shared_connection
from tests.cli.connection.test_colab_cli import colab_road, via_colab  # noqa: F401  (fixtures)
from tests.cli.connection.test_flow_e2e import close_masters_after, cloudflared_env, stop_runtime  # noqa: F401  (fixtures)

from . import assert_fixable, doctor


def test_a_setting_above_the_block_that_wins_is_named(connected, capsys):
    """ssh takes the first value: a `Host *` above colabssh's block overrides the session (real `ssh -G`)."""
    config = connected.paths.user_config
    close_shared_connection(connected.paths, "colab")
    config.write_bytes(b"Host *\n  User alice\n\n" + config.read_bytes())
    code, checks, _ = doctor(capsys)
    assert code == FAILURE
    assert checks["ssh config"]["status"] == WARN and "below 2 setting lines" in checks["ssh config"]["detail"]
    assert_fixable(checks["ssh -G colab"], FAIL, "user: ssh uses alice, colabssh wrote root", "above colabssh's block")
    assert_fixable(checks["reach colab"], FAIL, "refused colabssh's key")


def test_a_stopped_runtime_is_unreachable(connected, capsys):
    stop_runtime(connected.runtime)
    close_shared_connection(connected.paths, "colab")
    code, checks, err = doctor(capsys)
    assert code == FAILURE
    assert checks["ssh -G colab"]["status"] == OK
    assert_fixable(checks["reach colab"], FAIL, "did not answer", "re-run the cell")
    assert "doctor found 1 problem: reach colab" in err


def test_cloudflared_is_checked_for_a_session_that_goes_through_it(start_runtime, capsys, tmp_path,
                                                                  cloudflared_env):  # noqa: F811
    running = start_runtime("cloudflared", extra_env=cloudflared_env)
    assert main(["connect", running.code, "--no-open"]) == 0
    code, checks, _ = doctor(capsys)
    assert code == 0, checks
    assert "cloudflared version 2025.11.1" in checks["cloudflared (colab)"]["detail"]
    assert checks["reach colab"]["status"] == OK
    close_shared_connection(Paths.from_env(), "colab")
    (tmp_path / "cloudflared-bin" / "cloudflared").unlink()
    code, checks, _ = doctor(capsys)
    assert code == FAILURE
    assert_fixable(checks["cloudflared (colab)"], FAIL, "cloudflared is not installed here", "install cloudflared")
    assert_fixable(checks["reach colab"], FAIL)


def test_the_colab_cli_of_a_via_colab_cli_session_is_checked(via_colab, capsys):  # noqa: F811
    code, checks, _ = doctor(capsys)
    assert code == 0, checks
    assert checks["colab (colab)"]["status"] == OK and "0.7.5" in checks["colab (colab)"]["detail"]
    assert checks["reach colab"]["status"] == OK and checks["ssh -G colab"]["status"] == OK
    close_shared_connection(Paths.from_env(), "colab")
    via_colab.exe.unlink()
    code, checks, _ = doctor(capsys)
    assert code == FAILURE
    assert_fixable(checks["colab (colab)"], FAIL, "colab is not installed here", "pip install google-colab-cli")
