"""The compiled-code cache beside the runtime's bundle cache (colab_bootstrap/ship.py): written once, then used
instead of the bundle (no JSON, no hash, no compile), and never trusted when it is damaged, foreign, open to others,
of another python, or no longer made from the bundle file in place: BOOT then runs from the bundle as before."""

from __future__ import annotations

import ast
import os
import stat
import sys
from pathlib import Path

import pytest

from colab_bootstrap import pack, ship
from tests.runtime.test_ship import boot, write_tree

PACKAGE = {
    "__init__.py": "",
    "says.py": "SAYS = 'from the source'\n",
    "cli.py": (
        "import sys\nfrom .says import SAYS\n"
        "def main(argv):\n"
        "    print(repr({'says': SAYS, 'argv': argv, 'json': 'json' in sys.modules,\n"
        "                'hashlib': 'hashlib' in sys.modules}))\n"
        "    if argv == ['boom']:\n        raise ValueError('named in the traceback')\n"
        "    return 7\n"),
    "broken.py": "def main(argv) -> int:\n    return (yield from)\n",  # compiles on no python: left out
}


@pytest.fixture
def bundle(tmp_path: Path) -> pack.Bundle:
    write_tree(tmp_path / "cachetest", PACKAGE)
    return pack.Bundle(*pack.collect(tmp_path / "cachetest", "cachetest"))


def code_file(state: Path, digest: str) -> Path:
    tag = ship.code_tag()
    assert tag is not None
    return state / "code" / f"{digest}.{tag}"


def run(state: Path, bundle: pack.Bundle, *args: str, sent: bool = False) -> dict:
    """BOOT runs cachetest.cli; what its main printed (SystemExit 7 checked)."""
    done = boot(state, bundle.compressed() if sent else None, "cachetest.cli", *args, digest=bundle.digest)
    assert done.returncode == 7, done.stderr.decode()
    return ast.literal_eval(done.stdout.decode())


def env_of(state: Path) -> dict[str, str]:
    return {"COLABSSH_STATE": str(state)}


def first_runs(state: Path, bundle: pack.Bundle) -> Path:
    """Ship the bundle, then run once from the caches; the code cache's path."""
    assert run(state, bundle, sent=True)["says"] == "from the source"
    cached = code_file(state, bundle.digest)
    assert cached.is_file()
    return cached


def test_the_first_run_caches_compiled_code_and_later_runs_use_it_without_json_or_hashing(
        tmp_path: Path, bundle: pack.Bundle) -> None:
    state = tmp_path / "state"
    first = run(state, bundle, sent=True)
    assert first["says"] == "from the source" and first["json"] and first["hashlib"]  # the bundle: decoded, checked
    cached = code_file(state, bundle.digest)
    assert stat.S_IMODE(cached.stat().st_mode) == 0o600 and cached.stat().st_uid == os.geteuid()
    assert sorted(p.name for p in (state / "code").iterdir()) == sorted([bundle.digest, cached.name])  # no temp
    head = cached.read_bytes().split(b"\n", 1)[0].decode()
    assert head.startswith(f"{ship.CODE_HEAD} {ship.FORMAT} {ship.code_tag()} {bundle.digest} ")
    modules, packages, codes = ship.read_code(bundle.digest, env_of(state)) or ({}, [], {})
    assert modules == ship.decode(bundle.data)[0] and packages == sorted(ship.decode(bundle.data)[1])
    assert sorted(codes) == ["cachetest", "cachetest.cli", "cachetest.says"]  # broken.py: left out, not fatal
    again = run(state, bundle, "a b")
    assert again == {"says": "from the source", "argv": ["a b"], "json": False, "hashlib": False}
    crash = boot(state, None, "cachetest.cli", "boom", digest=bundle.digest)
    assert crash.returncode == 1 and '<colabssh:cachetest.cli>", line 7' in crash.stderr.decode()
    broken = boot(state, None, "cachetest.broken", digest=bundle.digest)  # compiled when imported: as without
    assert broken.returncode == 1 and b"SyntaxError" in broken.stderr


def test_the_cached_code_is_what_runs(tmp_path: Path, bundle: pack.Bundle) -> None:
    """Code made from other source, cached under this bundle with a sound header: BOOT runs it, so it compiles
    nothing (which is also why the cache must never be one another user could write)."""
    state = tmp_path / "state"
    cached = first_runs(state, bundle)
    modules, packages = ship.decode(bundle.data)
    other = ship.compile_all({**modules, "cachetest.says": "SAYS = 'from the code cache'\n"})
    bundle_file = os.stat(state / "code" / bundle.digest)
    assert ship.store_code(bundle.digest, bundle_file, modules, packages, other, env_of(state))
    assert cached.is_file() and run(state, bundle)["says"] == "from the code cache"


def tamper(cached: Path) -> None:
    data = bytearray(cached.read_bytes())
    data[-40] ^= 0xFF
    cached.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", ["a byte changed", "cut short", "empty", "no header", "a symlink to a sound one",
                                    "a folder", "open to others", "the bundle file rewritten", "the bundle file gone"])
def test_a_damaged_or_unsafe_code_cache_is_not_used_and_the_bundle_serves(tmp_path: Path, bundle: pack.Bundle,
                                                                         damage: str) -> None:
    state = tmp_path / "state"
    cached = first_runs(state, bundle)
    sound = cached.read_bytes()
    source_file = state / "code" / bundle.digest
    if damage == "a byte changed":
        tamper(cached)
    elif damage == "cut short":
        cached.write_bytes(sound[:-100])
    elif damage == "empty":
        cached.write_bytes(b"")
    elif damage == "no header":
        cached.write_bytes(sound.split(b"\n", 1)[1])
    elif damage == "a symlink to a sound one":
        (tmp_path / "sound").write_bytes(sound)
        (tmp_path / "sound").chmod(0o600)
        cached.unlink()
        cached.symlink_to(tmp_path / "sound")
    elif damage == "a folder":
        cached.unlink()
        cached.mkdir()
    elif damage == "open to others":
        cached.chmod(0o644)
    elif damage == "the bundle file rewritten":  # the same bytes again, a new file: its code is made again
        source_file.unlink()
        assert pack.store(bundle.data, env_of(state))
    else:
        source_file.unlink()
    assert ship.read_code(bundle.digest, env_of(state)) is None
    if damage == "the bundle file gone":
        done = boot(state, None, "cachetest.cli", digest=bundle.digest)
        assert done.returncode == ship.MISS_EXIT  # a miss, as before: the bundle is asked for
        assert run(state, bundle, sent=True)["says"] == "from the source"
    else:
        shown = run(state, bundle)  # from the bundle file: decoded and hashed again
        assert shown["says"] == "from the source" and shown["json"] and shown["hashlib"]
    if damage in ("a symlink to a sound one", "a folder"):
        return  # not replaced: BOOT writes only by renaming a temp file over it, which a folder refuses
    assert ship.read_code(bundle.digest, env_of(state)) is not None  # made again, sound
    assert run(state, bundle)["json"] is False


@pytest.mark.parametrize("whose", ["the code file", "the bundle file"])
def test_a_code_cache_of_another_user_is_never_used(tmp_path: Path, bundle: pack.Bundle, whose: str,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    state = tmp_path / "state"
    cached = first_runs(state, bundle)
    owned = cached if whose == "the code file" else state / "code" / bundle.digest
    target = owned.stat().st_ino
    me = os.geteuid()
    real_fstat, real_stat = os.fstat, os.stat

    def as_other(info: os.stat_result) -> os.stat_result:
        if info.st_ino != target:
            return info
        fields = list(info)
        fields[stat.ST_UID] = me + 1
        return os.stat_result(fields)

    with monkeypatch.context() as patched:  # in this process, that one file is another user's
        patched.setattr(ship.os, "fstat", lambda fd: as_other(real_fstat(fd)))
        patched.setattr(ship.os, "stat", lambda *args, **kwargs: as_other(real_stat(*args, **kwargs)))
        assert ship.read_code(bundle.digest, env_of(state)) is None
    assert ship.read_code(bundle.digest, env_of(state)) is not None  # the same file, this user's: used
    if me == 0:  # root can give the file away for real: BOOT, a process of its own, sees the same
        os.chown(owned, 65534, 65534)
        assert ship.read_code(bundle.digest, env_of(state)) is None
        if whose == "the bundle file":  # refused too, as before: a miss, and the bundle is sent
            assert boot(state, None, "cachetest.cli", digest=bundle.digest).returncode == ship.MISS_EXIT
        shown = run(state, bundle, sent=whose == "the bundle file")
        assert shown["says"] == "from the source" and shown["json"]
        assert ship.read_code(bundle.digest, env_of(state)) is not None  # this user's own again


def test_code_of_another_python_is_not_used(tmp_path: Path, bundle: pack.Bundle,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Another python's code sits under its own name, and a file under this python's name whose header names
    another python is refused: BOOT compiles from the bundle and caches its own."""
    state = tmp_path / "state"
    env = env_of(state)
    first_runs(state, bundle)
    mine = code_file(state, bundle.digest)
    mine.unlink()
    real_tag = ship.code_tag()
    assert real_tag is not None
    other_tag = real_tag.replace(f"{sys.hexversion:08x}", f"{sys.hexversion + 1:08x}")
    monkeypatch.setattr(ship, "code_tag", lambda: other_tag)
    modules, packages = ship.decode(bundle.data)
    other = ship.compile_all({**modules, "cachetest.says": "SAYS = 'from another python'\n"})
    assert ship.store_code(bundle.digest, os.stat(state / "code" / bundle.digest), modules, packages, other, env)
    theirs = state / "code" / f"{bundle.digest}.{other_tag}"
    assert ship.read_code(bundle.digest, env) is not None  # sound, for that python
    monkeypatch.undo()
    assert ship.read_code(bundle.digest, env) is None
    assert run(state, bundle)["says"] == "from the source"  # not theirs
    assert mine.is_file() and theirs.is_file()  # each python its own
    mine.write_bytes(theirs.read_bytes())  # theirs under this python's name: its header says whose it is
    mine.chmod(0o600)
    assert ship.read_code(bundle.digest, env) is None
    assert run(state, bundle)["says"] == "from the source"


def test_the_importer_compiles_a_module_whose_cached_code_is_unusable(tmp_path: Path) -> None:
    write_tree(tmp_path / "cachetest3", {"__init__.py": "", "a.py": "VALUE = 'compiled here'\n"})
    modules, packages = pack.collect(tmp_path / "cachetest3", "cachetest3")
    codes = ship.compile_all({**modules, "cachetest3.a": "VALUE = 'from the cache'\n"})
    importer = ship.install(modules, packages, codes={**codes, "cachetest3.a": b"not marshal at all"})
    try:
        import cachetest3.a  # type: ignore[import-not-found]

        assert cachetest3.a.VALUE == "compiled here"
        assert importer.code("cachetest3") is not None and pack.running_bundle() is importer
        importer.codes["cachetest3.a"] = codes["cachetest3.a"]
        namespace: dict = {}
        exec(importer.code("cachetest3.a"), namespace)
        assert namespace["VALUE"] == "from the cache"
    finally:
        sys.meta_path.remove(importer)
        for name in [n for n in sys.modules if n.split(".")[0] == "cachetest3"]:
            del sys.modules[name]


def test_a_rerun_cell_keeps_its_bundle_file_so_the_compiled_code_stays_valid(tmp_path: Path,
                                                                              bundle: pack.Bundle) -> None:
    state = tmp_path / "state"
    env = env_of(state)
    first_runs(state, bundle)
    source_file = state / "code" / bundle.digest
    before = source_file.stat()
    modules, packages = ship.decode(bundle.data)
    importer = ship.install(modules, packages)  # as the cell runs
    try:
        assert pack.cache_running_bundle(env)
        after = source_file.stat()
        assert (after.st_ino, after.st_mtime_ns, after.st_ctime_ns) == (before.st_ino, before.st_mtime_ns,
                                                                         before.st_ctime_ns)
        assert ship.read_code(bundle.digest, env) is not None
        source_file.write_bytes(bundle.data[:-10])  # damaged: the cell writes it whole again
        assert pack.cache_running_bundle(env)
        assert source_file.read_bytes() == bundle.data and source_file.stat().st_ino != before.st_ino
        assert ship.read_code(bundle.digest, env) is None  # made from another file: compiled again when next used
    finally:
        sys.meta_path.remove(importer)
