"""One way to ship code to the runtime (colab_bootstrap/ship.py, colabssh_cli/remote/shipping.py): the bundle, its hash,
the importer, the cache on the runtime and BOOT; then sync and demo through it against the printed cell's sshd."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

import colab_bootstrap
from colab_bootstrap import pack, ship
from colabssh_cli.app import main
from colabssh_cli.cell import PAYLOAD_START, carried_bundle, payload_literal
from colabssh_cli.remote.runner import Remote
from colabssh_cli.remote.shipping import bundle, run_module
from tests.shipped import BOOT, BUNDLE, PAYLOAD

# a cheap, real module run: the demo refuses an unknown argument before importing torch (exit 2)
PROBE = ("colab_bootstrap.demo", "--nope")


def boot(state: Path, data: bytes | None, *args: str, digest: str = BUNDLE.digest, site: bool = False,
         program: str = BOOT) -> subprocess.CompletedProcess[bytes]:
    """BOOT as the runtime runs it, python -I (no checkout on the path), the bundle on stdin or none."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["COLABSSH_STATE"] = str(state)
    argv = [sys.executable, "-I", *([] if site else ["-S"]), "-c", program, digest, *(args or PROBE)]
    return subprocess.run(argv, input=data, stdin=None if data is not None else subprocess.DEVNULL,
                          capture_output=True, timeout=60, env=env, cwd="/")


def code_file(state: Path, digest: str = BUNDLE.digest) -> Path:
    """Where BOOT caches the compiled code of DIGEST for this python (the one BOOT runs with here)."""
    tag = ship.code_tag()
    assert tag is not None
    return state / "code" / f"{digest}.{tag}"


def is_miss(done: subprocess.CompletedProcess[bytes]) -> bool:
    return done.returncode == ship.MISS_EXIT and done.stderr.decode() == f"{ship.MISS_MARKER}{BUNDLE.digest}\n"


def ran_probe(done: subprocess.CompletedProcess[bytes]) -> bool:
    return done.returncode == 2 and b"unknown argument '--nope'" in done.stderr


# ------------------------------------------------------------------------------------------- the bundle
def test_the_hash_is_stable_and_follows_every_byte_of_every_module() -> None:
    modules, packages = pack.collect()
    assert pack.Bundle(modules, packages).digest == BUNDLE.digest == pack.Bundle.of_package().digest
    shipped = {name: pack.shipped_source(source) for name, source in modules.items()}
    assert ship.encode(dict(reversed(list(shipped.items()))), list(reversed(packages))) == BUNDLE.data
    changed = {**modules, "colab_bootstrap.gpu": modules["colab_bootstrap.gpu"] + " "}
    assert pack.Bundle(changed, packages).digest != BUNDLE.digest
    assert pack.Bundle(modules, [*packages, "colab_bootstrap.gpu"]).digest != BUNDLE.digest
    assert ship.decode(BUNDLE.data) == (shipped, sorted(packages))
    assert zlib.decompress(BUNDLE.compressed()) == BUNDLE.data
    assert "colab_bootstrap.ship" in modules and "colab_bootstrap" in packages
    top = {ship.PACKAGE if p.name == "__init__.py" else f"{ship.PACKAGE}.{p.stem}"
           for p in Path(colab_bootstrap.__file__).parent.glob("*.py")}
    assert top <= set(modules)


def test_boot_is_this_modules_parts_as_inspect_reads_them_and_compiles() -> None:
    import inspect

    program = pack.boot_program()
    parts = "\n".join(inspect.getsource(part) for part in ship._BOOT_PARTS)
    miss = "from __future__ import annotations\n" + "\n".join(inspect.getsource(part) for part in ship._MISS_PARTS)
    assert program.endswith(f"\n{parts}\nMISS_PARTS = {miss!r}\nsys.exit(boot(sys.argv[1:]))\n")
    compile(program, "<boot>", "exec")
    compile(miss, "<miss>", "exec")
    sample = ("import os\n\n\n@decorated\n@twice(1)\ndef first(a,\n          b):\n    x = 1\n\n    def inner():\n"
              "        return x\n\n    return inner\n\n\n# a comment\nVALUE = 1\n\n\nclass Second:\n"
              "    \"\"\"Doc.\"\"\"\n\n    y = 2\nasync def third():\n    pass\n\n")
    blocks = pack.top_level_blocks(sample)
    assert blocks == {"first": "@decorated\n@twice(1)\ndef first(a,\n          b):\n    x = 1\n\n    def inner():\n"
                               "        return x\n\n    return inner\n",
                      "Second": 'class Second:\n    """Doc."""\n\n    y = 2\n',
                      "third": "async def third():\n    pass\n"}


def write_tree(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)


NESTED = {
    "__init__.py": "NAME = 'top'\n",
    "top.py": "VALUE = 21\n",
    "sub/__init__.py": "from .inner import twice\n",
    "sub/inner.py": "from ..top import VALUE\n\ndef twice():\n    return 2 * VALUE\n",
    "sub/deeper/__init__.py": "",
    "sub/deeper/cli.py": (
        "import json, sys\nfrom ... import NAME, top\nfrom ..inner import twice\nfrom .. import twice as again\n"
        "def main(argv):\n"
        "    print(json.dumps({'argv': argv, 'twice': twice(), 'again': again(), 'name': NAME,\n"
        "                      'value': top.VALUE, 'package': __package__, 'file': __file__}))\n"
        "    if argv == ['boom']:\n        raise ValueError('named in the traceback')\n"
        "    return 7\n"),
    "not-a-module.py": "x = 1\n",  # no importable name: left out
    "loose/stray.py": "x = 1\n",  # a folder without __init__.py: no package, left out
}


def test_collect_takes_subpackages_keyed_by_dotted_name(tmp_path: Path) -> None:
    write_tree(tmp_path / "shiptest", NESTED)
    modules, packages = pack.collect(tmp_path / "shiptest", "shiptest")
    assert sorted(modules) == ["shiptest", "shiptest.sub", "shiptest.sub.deeper", "shiptest.sub.deeper.cli",
                               "shiptest.sub.inner", "shiptest.top"]
    assert sorted(packages) == ["shiptest", "shiptest.sub", "shiptest.sub.deeper"]


def test_boot_imports_nested_subpackages_with_relative_imports_then_from_the_cache(tmp_path: Path) -> None:
    write_tree(tmp_path / "shiptest", NESTED)
    nested = pack.Bundle(*pack.collect(tmp_path / "shiptest", "shiptest"))
    state = tmp_path / "state"
    first = boot(state, nested.compressed(), "shiptest.sub.deeper.cli", "a b", "--c", digest=nested.digest)
    assert first.returncode == 7, first.stderr.decode()
    assert json.loads(first.stdout) == {"argv": ["a b", "--c"], "twice": 42, "again": 42, "name": "top", "value": 21,
                                        "package": "shiptest.sub.deeper", "file": "<colabssh:shiptest.sub.deeper.cli>"}
    assert (state / "code" / nested.digest).read_bytes() == nested.data
    again = boot(state, None, "shiptest.sub.deeper.cli", digest=nested.digest)  # stdin closed: the cache serves
    assert again.returncode == 7 and json.loads(again.stdout)["argv"] == []
    crash = boot(state, None, "shiptest.sub.deeper.cli", "boom", digest=nested.digest)
    assert crash.returncode == 1 and '<colabssh:shiptest.sub.deeper.cli>", line 9' in crash.stderr.decode()


def test_the_importer_serves_a_bundle_in_process_and_says_where_it_runs_from(tmp_path: Path) -> None:
    write_tree(tmp_path / "shiptest2", {**NESTED, "__init__.py": "from .sub import twice\n"})
    modules, packages = pack.collect(tmp_path / "shiptest2", "shiptest2")
    assert pack.running_bundle() is None  # this process runs colab_bootstrap from files
    importer = ship.install(modules, packages)
    try:
        import shiptest2  # type: ignore[import-not-found]

        assert shiptest2.twice() == 42 and pack.running_bundle() is importer
        assert importer.get_source("shiptest2.top") == "VALUE = 21\n"
    finally:
        sys.meta_path.remove(importer)
        for name in [n for n in sys.modules if n.split(".")[0] == "shiptest2"]:
            del sys.modules[name]


# ------------------------------------------------------------------------------------------- the cache and BOOT
def test_a_miss_asks_for_the_bundle_then_ships_it_once_and_caches_it(tmp_path: Path) -> None:
    state = tmp_path / "state"
    assert is_miss(boot(state, None)) and not state.exists()  # a miss writes nothing
    assert ran_probe(boot(state, PAYLOAD))
    code = state / "code"
    assert stat.S_IMODE(state.stat().st_mode) == 0o700 and stat.S_IMODE(code.stat().st_mode) == 0o700
    assert sorted(p.name for p in code.iterdir()) == [BUNDLE.digest, code_file(state).name]  # no temp file left
    assert stat.S_IMODE((code / BUNDLE.digest).stat().st_mode) == 0o600
    assert stat.S_IMODE(code_file(state).stat().st_mode) == 0o600
    assert (code / BUNDLE.digest).read_bytes() == BUNDLE.data
    assert ran_probe(boot(state, None))  # a hit: nothing sent


def test_a_damaged_or_foreign_bundle_on_stdin_is_refused_and_not_cached(tmp_path: Path) -> None:
    state = tmp_path / "state"
    other = pack.Bundle({"colab_bootstrap": "x = 1\n"}, ["colab_bootstrap"])
    for sent in (PAYLOAD[: len(PAYLOAD) // 2], other.compressed(), b"not zlib at all"):
        done = boot(state, sent)
        assert done.returncode == 1 and b"arrived damaged" in done.stderr, done.stderr
    assert not (state / "code").exists() or not any((state / "code").iterdir())


@pytest.mark.parametrize("damage", ["partial", "empty", "another bundle", "a symlink to the right one", "a folder"])
def test_a_damaged_cache_file_is_a_miss_and_the_next_shipment_replaces_it(tmp_path: Path, damage: str) -> None:
    state = tmp_path / "state"
    assert ran_probe(boot(state, PAYLOAD))
    cached = state / "code" / BUNDLE.digest
    cached.unlink()
    if damage == "partial":
        cached.write_bytes(BUNDLE.data[:-100])
    elif damage == "empty":
        cached.write_bytes(b"")
    elif damage == "another bundle":
        cached.write_bytes(pack.Bundle({"colab_bootstrap": "x = 1\n"}, ["colab_bootstrap"]).data)
    elif damage == "a symlink to the right one":
        (tmp_path / "right").write_bytes(BUNDLE.data)
        cached.symlink_to(tmp_path / "right")
    else:
        cached.mkdir()
    assert is_miss(boot(state, None))
    shipped = boot(state, PAYLOAD)
    assert ran_probe(shipped)  # it runs from what was sent, whether or not the cache could take it
    if damage != "a folder":
        assert not cached.is_symlink() and cached.read_bytes() == BUNDLE.data
        assert ran_probe(boot(state, None))


@pytest.mark.parametrize("unsafe", ["code is a symlink", "state is a symlink", "code belongs to another user",
                                    "state belongs to another user", "code is open to others"])
def test_an_unsafe_cache_folder_is_never_read_nor_written(tmp_path: Path, unsafe: str,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    state, elsewhere = tmp_path / "state", tmp_path / "elsewhere"
    env = {"COLABSSH_STATE": str(state)}
    assert ran_probe(boot(elsewhere, PAYLOAD))  # a folder holding the right bundle
    foreign_in_process_only = False  # not root: the folder cannot be given away, so this process is made another
    if unsafe == "code is a symlink":
        state.mkdir(mode=0o700)
        (state / "code").symlink_to(elsewhere / "code")
    elif unsafe == "state is a symlink":
        state.symlink_to(elsewhere)
    else:
        shutil.move(elsewhere, state)
        if unsafe.endswith("belongs to another user"):
            owned = state / "code" if unsafe.startswith("code") else state
            if os.geteuid() == 0:
                os.chown(owned, 65534, 65534)
            else:
                owner = os.stat(owned).st_uid
                monkeypatch.setattr(ship.os, "geteuid", lambda: owner + 1)
                foreign_in_process_only = True
        else:
            (state / "code").chmod(0o755)
    before = sorted(p.name for p in (tmp_path / "elsewhere" if unsafe.endswith("symlink") else state)
                    .joinpath("code").iterdir())
    assert pack.read_cached(BUNDLE.digest, env) is None  # the right bundle is there, but not where it may be trusted
    assert ship.read_code(BUNDLE.digest, env) is None  # and its compiled code too
    if not foreign_in_process_only:  # BOOT, a process of its own, sees the same
        assert is_miss(boot(state, None))
        assert ran_probe(boot(state, PAYLOAD))  # still runs, from what was sent
    assert pack.store(BUNDLE.data, env) is False
    after = sorted(p.name for p in (tmp_path / "elsewhere" if unsafe.endswith("symlink") else state)
                   .joinpath("code").iterdir())
    assert after == before == [BUNDLE.digest, code_file(state).name]


def test_read_cached_takes_only_a_well_formed_hash(tmp_path: Path) -> None:
    env = {"COLABSSH_STATE": str(tmp_path / "state")}
    assert pack.store(BUNDLE.data, env) is True
    assert pack.read_cached(BUNDLE.digest, env) == BUNDLE.data
    for name in ("../" + BUNDLE.digest[3:], BUNDLE.digest.upper(), BUNDLE.digest[:-1], ""):
        assert pack.read_cached(name, env) is None


# ------------------------------------------------------------------------------------------- over SSH
class Recording(Remote):
    """The real remote seam, noting what each command sends on stdin."""

    def __init__(self, remote: Remote) -> None:
        super().__init__(remote.session, remote.paths)
        self.sent: list[bytes | None] = []

    def stream(self, command: str, **kwargs) -> int:  # type: ignore[no-untyped-def, override]
        self.sent.append(kwargs.get("input"))
        return super().stream(command, **kwargs)


def test_the_cells_cache_serves_laptop_commands_and_a_miss_ships_once(connected) -> None:  # noqa: ANN001
    cached = connected.runtime.state / "code" / bundle().digest
    assert cached.read_bytes() == bundle().data  # the cell cached its own bundle: the laptop's, same version
    remote = Recording(Remote.for_alias("colab"))
    err: list[str] = []
    assert run_module(remote, *PROBE[:1], PROBE[1:], on_stderr=err.append) == 2
    assert remote.sent == [None] and "unknown argument '--nope'" in err[0]  # a hit: only the command line
    cached.unlink()
    remote.sent.clear()
    err.clear()
    assert run_module(remote, *PROBE[:1], PROBE[1:], on_stderr=err.append) == 2
    assert remote.sent == [None, bundle().compressed()]  # a miss: asked, then shipped
    assert not any(line.startswith(ship.MISS_MARKER) for line in err)  # the miss is not the user's business
    assert cached.read_bytes() == bundle().data
    remote.sent.clear()
    assert run_module(remote, *PROBE[:1], PROBE[1:]) == 2 and remote.sent == [None]


def test_a_runtime_without_the_cache_still_syncs_and_runs_the_demo(connected, capsys) -> None:  # noqa: ANN001
    """What a session no cell made (colab-ssh, the `colab` CLI) meets: no code cached on the runtime."""
    shutil.rmtree(connected.runtime.state / "code")
    (connected.runtime.content / "kept.txt").write_text("kept")
    assert main(["sync"]) == 0, capsys.readouterr().err
    assert (connected.runtime.drive / "colabssh" / "content" / "kept.txt").read_text() == "kept"
    capsys.readouterr()
    shutil.rmtree(connected.runtime.state / "code")
    assert main(["demo", "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["device"] == "cpu"
    assert ship.MISS_MARKER not in captured.err
    assert (connected.runtime.state / "code" / bundle().digest).is_file()


def test_a_cell_of_another_colabssh_version_still_works(start_runtime, render, capsys) -> None:  # noqa: ANN001
    cell = render("local")
    lines = cell.read_text().split("\n")
    modules, packages = ship.decode(carried_bundle("\n".join(lines)))
    modules["colab_bootstrap.gpu"] = "# another colabssh\n" + modules["colab_bootstrap.gpu"]
    start = lines.index(PAYLOAD_START)
    lines[start:lines.index(")", start) + 1] = payload_literal(ship.encode(modules, packages))
    cell.write_text("\n".join(lines))
    runtime = start_runtime(cell=cell)
    theirs = [p.name for p in (runtime.state / "code").iterdir()]
    assert len(theirs) == 1 and theirs[0] != bundle().digest
    assert main(["connect", runtime.code, "--no-open"]) == 0
    capsys.readouterr()
    (runtime.content / "kept.txt").write_text("kept")
    assert main(["sync"]) == 0, capsys.readouterr().err
    assert (runtime.drive / "colabssh" / "content" / "kept.txt").read_text() == "kept"
    assert sorted(p.name for p in (runtime.state / "code").iterdir()) == \
        sorted([*theirs, bundle().digest, code_file(runtime.state, bundle().digest).name])
