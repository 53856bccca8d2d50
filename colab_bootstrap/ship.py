"""The one way colabssh ships its code to a runtime: a bundle of the package's sources, cached under its hash.

The bundle is every ``.py`` of ``colab_bootstrap`` (subpackages too; comments and docstrings blanked by
``pack.shipped_source``), keyed by dotted module name, in one canonical encoding (sorted JSON, ASCII); its name
is the SHA-256 of those bytes. ``BundleImporter`` is the one importer (a meta-path finder serving modules from
a bundle): the cell installs it over the bundle it carries, a laptop command over the one it finds or sends.

The cell, when it runs, stores its own bundle as ``STATE/code/HASH`` (one file, written whole or not at all, in a
0700 folder of this user, reached without following a symlink). A laptop command then runs, with the runtime's
python, ``python -S -c BOOT HASH MODULE ARGS...`` (``pack.boot_program``): BOOT loads the bundle of HASH from the cache
when it is there and its bytes hash to HASH; otherwise it reads the zlib-compressed bundle from stdin, checks its
hash, stores it for the next command and uses it. Then it runs ``MODULE.main(ARGS)`` and exits with its status.

Compiled code is cached too, so a command compiles nothing: ``STATE/code/HASH.TAG`` (``code_tag``: this python's
bytecode, from its cache tag, version, magic number and -O level) holds every module's source and its marshalled
code object, and names the cached bundle file it was made from (device, inode, size, times). BOOT uses it only when
it is a regular 0600 file of this user in the same private folder, its header names this bundle, this python and
that very bundle file (still there, not replaced), and its checksum holds; then it reads neither the bundle nor
JSON, hashes nothing, and unmarshals only the modules the command imports. Anything else (absent, damaged,
foreign, another python, a replaced bundle file) falls back to the bundle, whose modules are then compiled once
and the result stored for the next command, written like the bundle (temp name, fsync, rename).

On a miss (stdin empty) BOOT writes ``MISS_MARKER`` + HASH on stderr and exits ``MISS_EXIT``; the laptop runs the
same command once more with the compressed bundle on stdin (docs/how-it-works.md, "How code reaches the runtime").

Standard library only, and portable. The laptop's half (the bundle of this package, BOOT's text) is in
``pack.py``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any, Optional

PACKAGE = "colab_bootstrap"
FORMAT = 1
MISS_EXIT = 75  # BOOT's status when it has no bundle: the cache misses and stdin was empty (EX_TEMPFAIL)
MISS_MARKER = "colabssh-ship: no cached code for "
MAX_BUNDLE = 64 << 20  # bytes of a bundle (cached or sent, uncompressed) that are read at most
CODE_FOLDER = "code"
CODE_HEAD = "colabssh-code"  # the first word of a compiled-code cache file
MAX_CODE = 4 * MAX_BUNDLE  # bytes of a compiled-code cache file that are read at most


def encode(modules: Mapping[str, str], packages: Sequence[str]) -> bytes:
    """The canonical bytes of a bundle: the same modules give the same bytes on any python."""
    import json

    document = {"format": FORMAT, "modules": dict(modules), "packages": sorted(set(packages))}
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def decode(data: bytes) -> tuple[dict[str, str], list[str]]:
    """The modules and package names of a bundle's bytes; ValueError when they are not one."""
    import json

    document = json.loads(data.decode("ascii"))
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise ValueError("not a colabssh code bundle of a known format")
    modules, packages = document.get("modules"), document.get("packages")
    if not isinstance(modules, dict) or not isinstance(packages, list) or \
            not all(isinstance(k, str) and isinstance(v, str) for k, v in modules.items()):
        raise ValueError("a damaged colabssh code bundle")
    return modules, [str(name) for name in packages]


def digest(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


class BundleImporter:
    """Serves the modules of one bundle by name; a package's ``__init__`` and relative imports work as from files.

    A meta-path finder and loader by protocol (``find_spec``; ``create_module``, ``exec_module``), without
    importlib.abc's classes, whose import costs a laptop command more than the rest of its start. CODES, when
    given, holds modules' marshalled code objects (``compile_all``), used instead of compiling their source."""

    def __init__(self, modules: Mapping[str, str], packages: Sequence[str], digest: str = "",
                 codes: Optional[Mapping[str, bytes]] = None) -> None:
        self.modules = dict(modules)
        self.packages = frozenset(packages)
        self.digest = digest
        self.codes = dict(codes or {})

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        if name not in self.modules:
            return None
        from importlib.machinery import ModuleSpec

        loader: Any = self  # a loader by protocol
        return ModuleSpec(name, loader, origin=self._filename(name), is_package=name in self.packages)

    def create_module(self, spec: Any) -> None:
        return None

    def exec_module(self, module: Any) -> None:
        import linecache

        name = module.__name__
        source = self.modules[name]
        filename = self._filename(name)
        linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)  # tracebacks show lines
        module.__file__ = filename
        exec(self.code(name), module.__dict__)

    def code(self, name: str) -> Any:
        """NAME's code object: unmarshalled from CODES when it holds a sound one, else compiled from the source."""
        import marshal
        from types import CodeType

        blob = self.codes.get(name)
        if blob is not None:
            try:
                code = marshal.loads(blob)
            except (ValueError, EOFError, TypeError):
                code = None
            if isinstance(code, CodeType):
                return code
        return compile(self.modules[name], self._filename(name), "exec")

    def get_source(self, name: str) -> str:
        return self.modules[name]

    def is_package(self, name: str) -> bool:
        return name in self.packages

    @staticmethod
    def _filename(name: str) -> str:
        return f"<colabssh:{name}>"


def install(modules: Mapping[str, str], packages: Sequence[str], digest: str = "",
            codes: Optional[Mapping[str, bytes]] = None) -> BundleImporter:
    """Serve the package from MODULES (compiled CODES where given) from now on: earlier imports of it and earlier
    importers are dropped."""
    top = {name.split(".", 1)[0] for name in modules}
    for name in [n for n in sys.modules if n.split(".", 1)[0] in top]:
        del sys.modules[name]  # a re-run uses this bundle's code, not an earlier one's
    ours = (BundleImporter.__name__, "_ColabsshSources")  # also the importer of cells before the bundle
    sys.meta_path[:] = [f for f in sys.meta_path if type(f).__name__ not in ours]
    importer = BundleImporter(modules, packages, digest, codes)
    sys.meta_path.insert(0, importer)
    return importer


def state_path(environ: Mapping[str, str]) -> str:
    """COLABSSH_STATE, else ~/.colabssh-runtime (as settings.state_folder)."""
    home = environ.get("HOME") or os.path.expanduser("~")
    return os.path.abspath(environ.get("COLABSSH_STATE") or os.path.join(home, ".colabssh-runtime"))


def open_code_folder(state: str, create: bool) -> int:
    """A descriptor of STATE/code: this user's real folders (no symlink followed), the code folder 0700."""
    import stat

    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
    if create:
        try:
            os.mkdir(state, 0o700)
        except FileExistsError:
            pass
    top = os.open(state, flags)
    try:
        if os.fstat(top).st_uid != os.geteuid():
            raise PermissionError(f"{state} belongs to another user")
        if create:
            try:
                os.mkdir(CODE_FOLDER, 0o700, dir_fd=top)
            except FileExistsError:
                pass
        fd = os.open(CODE_FOLDER, flags, dir_fd=top)
    finally:
        os.close(top)
    info = os.fstat(fd)
    if info.st_uid != os.geteuid() or not stat.S_ISDIR(info.st_mode) or info.st_mode & 0o077:
        os.close(fd)
        raise PermissionError(f"{state}/{CODE_FOLDER} is not a private folder of this user")
    return fd


def is_digest(text: str) -> bool:
    return len(text) == 64 and all(ch in "0123456789abcdef" for ch in text)


def read_whole(fd: int, size: int) -> bytes:
    """An open regular file's bytes: at most one read past SIZE (its fstat size), so a growing file ends there."""
    chunks, got = [], 0
    while got <= size:
        chunk = os.read(fd, 1 << 20)
        if not chunk:
            break
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def read_bundle(digest: str, environ: Mapping[str, str]) -> Optional[tuple[bytes, Any]]:
    """The cached bundle of DIGEST and its file's stat, only when its bytes hash to DIGEST; None for anything else."""
    import hashlib
    import stat

    if not is_digest(digest):
        return None
    try:
        folder = open_code_folder(state_path(environ), create=False)
    except OSError:
        return None
    try:
        fd = os.open(digest, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=folder)
    except OSError:
        return None
    finally:
        os.close(folder)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid() or info.st_size > MAX_BUNDLE:
            return None
        data = read_whole(fd, info.st_size)
    except OSError:
        return None
    finally:
        os.close(fd)
    return (data, info) if hashlib.sha256(data).hexdigest() == digest else None


def write_cached(name: str, data: bytes, environ: Mapping[str, str]) -> Any:
    """Write STATE/code/NAME (a unique temp name, 0600, fsync, rename); its stat once in place, None when it cannot."""
    try:
        folder = open_code_folder(state_path(environ), create=True)
    except OSError:
        return None
    temp = f".{name}.{os.getpid()}.{os.urandom(4).hex()}.tmp"
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600, dir_fd=folder)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
                os.replace(temp, name, src_dir_fd=folder, dst_dir_fd=folder)
                return os.fstat(handle.fileno())  # after the rename, which may change its ctime
        except BaseException:
            try:
                os.unlink(temp, dir_fd=folder)
            except OSError:
                pass
            raise
    except OSError:
        return None
    finally:
        os.close(folder)


def code_tag() -> Optional[str]:
    """What compiled code depends on besides its source: this python (cache tag, version, bytecode magic number)
    and its -O level; None for a python that caches no bytecode."""
    try:
        from importlib._bootstrap_external import MAGIC_NUMBER  # loaded already: costs nothing
    except ImportError:
        from importlib.util import MAGIC_NUMBER
    tag = sys.implementation.cache_tag
    if not tag:
        return None
    return f"{tag}-{sys.hexversion:08x}-{MAGIC_NUMBER.hex()}-O{sys.flags.optimize}"


def bundle_file_identity(info: Any) -> str:
    """Which file a bundle was read from: a replaced or rewritten file (even with the same name) differs."""
    return f"{info.st_dev}:{info.st_ino}:{info.st_size}:{info.st_mtime_ns}:{info.st_ctime_ns}"


def code_header(digest: str, tag: str, identity: str, checksum: int) -> bytes:
    return f"{CODE_HEAD} {FORMAT} {tag} {digest} {identity} {checksum:08x}\n".encode("ascii")


def compile_all(modules: Mapping[str, str]) -> dict[str, bytes]:
    """Each module's marshalled code object; a module this python cannot compile is left out (compiled, and its
    error raised, only if it is imported, as without a cache)."""
    import marshal

    codes = {}
    for name, source in modules.items():
        try:
            codes[name] = marshal.dumps(compile(source, BundleImporter._filename(name), "exec"))
        except (SyntaxError, ValueError):
            continue
    return codes


def store_code(digest: str, bundle_file: Any, modules: Mapping[str, str], packages: Sequence[str],
               codes: Mapping[str, bytes], environ: Mapping[str, str]) -> bool:
    """Cache CODES of the bundle DIGEST, read from the file whose stat is BUNDLE_FILE, as STATE/code/HASH.TAG."""
    import marshal
    import zlib

    tag = code_tag()
    if tag is None or not is_digest(digest):
        return False
    body = marshal.dumps((sorted(packages), dict(modules), dict(codes)))
    head = code_header(digest, tag, bundle_file_identity(bundle_file), zlib.crc32(body))
    return write_cached(f"{digest}.{tag}", head + body, environ) is not None


def read_code(digest: str, environ: Mapping[str, str]) -> Optional[tuple[dict[str, str], list[str], dict[str, bytes]]]:
    """The modules, packages and codes cached for DIGEST and this python, only when the file is this user's own
    and private, names this bundle, this python and the bundle file still in place, and its checksum holds."""
    import marshal
    import stat
    import zlib

    tag = code_tag()
    if tag is None or not is_digest(digest):
        return None
    try:
        folder = open_code_folder(state_path(environ), create=False)
    except OSError:
        return None
    try:
        bundle_file = os.stat(digest, dir_fd=folder, follow_symlinks=False)
        fd = os.open(f"{digest}.{tag}", os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=folder)
    except OSError:
        return None
    finally:
        os.close(folder)
    me = os.geteuid()
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_uid != me or info.st_mode & 0o077 or info.st_size > MAX_CODE \
                or not stat.S_ISREG(bundle_file.st_mode) or bundle_file.st_uid != me:
            return None
        data = read_whole(fd, info.st_size)
    except OSError:
        return None
    finally:
        os.close(fd)
    head, newline, body = data.partition(b"\n")
    if not newline or head + newline != code_header(digest, tag, bundle_file_identity(bundle_file), zlib.crc32(body)):
        return None
    try:
        packages, modules, codes = marshal.loads(body)
    except (ValueError, EOFError, TypeError):
        return None
    if not isinstance(packages, list) or not isinstance(modules, dict) or not isinstance(codes, dict) or \
            not all(isinstance(k, str) and isinstance(v, str) for k, v in modules.items()) or \
            not all(isinstance(k, str) and isinstance(v, bytes) for k, v in codes.items()) or \
            not all(isinstance(name, str) for name in packages):
        return None
    return modules, packages, codes


def boot(argv: Sequence[str]) -> int:
    """BOOT's body: ``HASH MODULE ARGS...``; see the module's docstring."""
    digest, module, args = argv[0], argv[1], list(argv[2:])
    cached = read_code(digest, os.environ)
    if cached is not None:
        modules, packages, codes = cached
    else:
        if "MISS_PARTS" in globals():  # BOOT: the parts only a miss needs are compiled only then
            exec(compile(globals()["MISS_PARTS"], "<colabssh-boot>", "exec"), globals())
        found = read_bundle(digest, os.environ)
        if found is not None:
            data, bundle_file = found
        else:
            import hashlib
            import zlib

            sent = sys.stdin.buffer.read()
            if not sent:
                sys.stderr.write(f"{MISS_MARKER}{digest}\n")
                return MISS_EXIT
            try:
                data = zlib.decompressobj().decompress(sent, MAX_BUNDLE + 1)
            except zlib.error:
                data = b""
            if hashlib.sha256(data).hexdigest() != digest:
                sys.stderr.write("colabssh: the code sent to the runtime arrived damaged; run the command again\n")
                return 1
            bundle_file = write_cached(digest, data, os.environ)
        modules, packages = decode(data)
        codes = {}
        if bundle_file is not None:  # cached: compile it all once, so later commands compile nothing
            codes = compile_all(modules)
            store_code(digest, bundle_file, modules, packages, codes, os.environ)
    install(modules, packages, digest, codes)
    import importlib

    status = importlib.import_module(module).main(args)
    return int(status or 0)


# BOOT: what a command whose compiled code is cached runs; then, kept as a string until a miss needs it, the rest
_BOOT_PARTS = (BundleImporter, install, state_path, open_code_folder, is_digest, read_whole, code_tag,
               bundle_file_identity, code_header, read_code, boot)
_MISS_PARTS = (decode, read_bundle, write_cached, compile_all, store_code)
