"""`colabssh connect CODE` logs in once: the check before writing is OpenSSH's login through copies of the planned
files, and that login stays as the alias's shared connection, which ssh, VS Code and colabssh's commands ride.
paramiko is imported only to explain a failed login."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace

from colab_bootstrap import conncode
from colabssh_cli.app import main
from colabssh_cli.errors import UNREACHABLE
from colabssh_cli.paths import Paths
from colabssh_cli.remote.runner import Remote, close_shared_connection, shared_connection_alive
from tests.cli.connection.test_flow_e2e import close_masters_after, tree, user_ssh  # noqa: F401  (a fixture)
from tests.cli.remote.test_runner import logins
from tests.fakes import REPO, new_key


def test_a_connect_logs_in_once_and_everything_after_rides_that_login(runtime, isolated_home):
    assert logins(runtime) == 0
    assert main(["connect", runtime.code, "--no-open"]) == 0
    assert logins(runtime) == 1  # the check before writing; the login after writing rode its connection
    paths = Paths.from_env()
    assert shared_connection_alive(paths, "colab")
    assert user_ssh(isolated_home, "colab", "true").returncode == 0  # VS Code's and the user's ssh
    assert Remote.for_alias("colab").run("echo ok").stdout == b"ok\n"  # colabssh's commands
    assert logins(runtime) == 1


def test_connecting_the_same_code_again_rides_the_open_connection_or_opens_one(runtime, isolated_home):
    assert main(["connect", runtime.code, "--no-open"]) == 0
    assert main(["connect", runtime.code, "--no-open"]) == 0
    assert logins(runtime) == 1  # the files were already so: the check went through the open connection
    paths = Paths.from_env()
    close_shared_connection(paths, "colab")
    assert main(["connect", runtime.code, "--no-open"]) == 0
    assert logins(runtime) == 2  # one new login, which stays open
    assert shared_connection_alive(paths, "colab")


def test_a_new_runtime_for_the_alias_is_one_new_login(start_runtime, isolated_home, tmp_path):
    first = start_runtime("local", where=tmp_path / "first")
    second = start_runtime("local", where=tmp_path / "second")
    assert main(["connect", first.code, "--no-open"]) == 0
    assert main(["connect", second.code, "--no-open"]) == 0
    assert (logins(first), logins(second)) == (1, 1)
    result = user_ssh(isolated_home, "colab", "echo $COLABSSH_STATE")
    assert result.stdout.strip() == str(second.state)
    assert logins(second) == 1


def _connect_in_a_fresh_python(code: str, *extra: str) -> subprocess.CompletedProcess[str]:
    script = ("import sys\nfrom colabssh_cli.app import main\n"
              f"rc = main(['connect', {code!r}, '--no-open', *{list(extra)!r}])\n"
              "print('rc', rc, 'paramiko', 'paramiko' in sys.modules)\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120,
                          stdin=subprocess.DEVNULL)


def test_a_connect_that_works_never_imports_paramiko(runtime, isolated_home):
    done = _connect_in_a_fresh_python(runtime.code)
    assert done.stdout.split()[-4:] == ["rc", "0", "paramiko", "False"], done.stderr
    done = _connect_in_a_fresh_python(runtime.code)  # again: the files are already so
    assert done.stdout.split()[-4:] == ["rc", "0", "paramiko", "False"], done.stderr


def test_a_failed_login_is_explained_by_paramiko_as_before(runtime, isolated_home, tmp_path):
    """paramiko comes in only to say why OpenSSH's login failed: the pre-flight's own words, nothing written."""
    other = new_key(tmp_path / "keys", "other_host")
    other_line = " ".join(other.with_suffix(".pub").read_text().split()[:2])
    code = conncode.encode(replace(runtime.info, hostkey=other_line))
    before = tree(isolated_home)
    done = _connect_in_a_fresh_python(code)
    assert done.stdout.split()[-4:] == ["rc", str(UNREACHABLE), "paramiko", "True"], done.stderr
    got, want = runtime.info.fingerprint, conncode.fingerprint(other_line)
    assert f"presented host key {got}, not the code's {want}" in done.stderr
    assert tree(isolated_home) == before
    assert logins(runtime) == 0
