"""`colabssh pull` and `push` (colabssh_cli/transfer/copy.py): the laptop's rsync over the pinned connection."""

from __future__ import annotations

from pathlib import Path

from tests.cli.transfer.test_client import cli


def test_pull_and_push_over_the_pinned_connection(connected, capsys, tmp_path: Path) -> None:  # noqa: ANN001
    content = connected.runtime.content
    (content / "outputs" / "run 1").mkdir(parents=True)
    (content / "outputs" / "run 1" / "ckpt.pt").write_bytes(b"weights" * 1000)
    local = tmp_path / "laptop"
    code, out, err = cli(capsys, "pull", "outputs", str(local))
    assert code == 0, err
    assert (local / "outputs" / "run 1" / "ckpt.pt").read_bytes() == b"weights" * 1000
    assert "pulled colab:" in out and "1 file," in out
    code_dir = tmp_path / "code"
    code_dir.mkdir()
    (code_dir / "main.py").write_text("print('hi')")
    code, out, err = cli(capsys, "push", str(code_dir), "projects/new one")
    assert code == 0, err
    assert (content / "projects" / "new one" / "code" / "main.py").read_text() == "print('hi')"
    code, _, err = cli(capsys, "pull", "does/not/exist", str(local))
    assert code == 2 and "does not exist on the runtime" in err
    (tmp_path / "afile").write_text("a file, not a folder")
    code, out, err = cli(capsys, "pull", "outputs", str(tmp_path / "afile" / "sub"))
    assert code == 2 and out == "" and "Traceback" not in err
    assert err.splitlines()[0] == f"colabssh: error: cannot pull into {tmp_path}/afile/sub: {tmp_path}/afile is a " \
                                  "file, not a folder"
