"""A content-addressed archive: raw messages and attachments stored under their SHA-256.

Writes go to a temporary file in the same directory, are fsynced, then renamed into
place, so a crash leaves either nothing or the whole file. An existing file is never
overwritten: the same name means the same bytes.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import re
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from config.errors import StorageError

_SHA256_NAME = re.compile(r"[0-9a-f]{64}")


def sha256_hex(data: bytes) -> str:
    """The hex SHA-256 of `data`, the name everything is stored under."""
    return hashlib.sha256(data).hexdigest()


class Archive:
    """Files named by their SHA-256 under `root/aa/bb/<sha256>`."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path_for(self, sha256: str) -> Path:
        """Where the file with this hash lives (whether or not it exists yet)."""
        if _SHA256_NAME.fullmatch(sha256) is None:
            raise StorageError(f"not a SHA-256 name: {sha256!r}")
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def put(self, data: bytes, *, durable: bool = True) -> str:
        """Store `data` and return its SHA-256; storing it again is a cheap no-op.

        `durable=False` skips the syncs, for files derived from an archived message (its
        attachments): the rename still makes them all-or-nothing, `get` checks their hash,
        and `intake reprocess` can always derive them again.
        """
        digest = sha256_hex(data)
        target = self.path_for(digest)
        if _holds(target, len(data)):
            return digest
        temporary = target.with_name(f".tmp-{os.getpid()}-{threading.get_ident()}-{digest}")
        try:
            _write_new(temporary, data, sync=durable, mode=0o600)  # as tempfile.mkstemp did
            try:
                os.replace(temporary, target)
            except BaseException:
                temporary.unlink(missing_ok=True)
                raise
            if not durable:
                return digest
            directory = os.open(target.parent, os.O_RDONLY)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)
        except OSError as exc:
            raise StorageError(
                f"cannot write {target}: {exc.strerror} — check storage.path and free space"
            ) from exc
        return digest

    def get(self, sha256: str) -> bytes:
        """The bytes stored under `sha256`; a StorageError if missing or damaged."""
        path = self.path_for(sha256)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise StorageError(f"archive file {path} is missing: {exc.strerror}") from exc
        if sha256_hex(data) != sha256:
            raise StorageError(f"archive file {path} is damaged: its content does not match")
        return data

    def put_many(self, payloads: Sequence[bytes]) -> list[str]:
        """Store many payloads durably with two filesystem syncs instead of two per file."""
        return _put_many(self, payloads)

    def has(self, sha256: str) -> bool:
        """Whether the archive holds this hash."""
        return self.path_for(sha256).exists()


def _holds(target: Path, size: int) -> bool:
    """Whether `target` already exists with `size` bytes (one stat, no exception on a miss)."""
    try:
        return os.stat(target).st_size == size
    except FileNotFoundError:
        return False


def _write_new(path: Path, data: bytes, *, sync: bool, mode: int = 0o666) -> None:
    """Write `data` to a new file at `path`, creating its directories only when missing.

    A leftover temporary file of a crashed run with the same name is replaced; `mode` is
    masked by the umask, as `open` does.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0)
    try:
        descriptor = os.open(path, flags, mode)
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, flags, mode)
    try:
        with memoryview(data) as view:
            written = 0
            while written < len(view):
                written += os.write(descriptor, view[written:])
        if sync:
            os.fsync(descriptor)
    except BaseException:
        os.close(descriptor)
        path.unlink(missing_ok=True)
        raise
    os.close(descriptor)


_LIBC_SYNCFS: Callable[[int], int] | None = None


def _syncfs() -> Callable[[int], int] | None:
    """Linux's syncfs(2), which makes a whole filesystem durable in one journal commit."""
    global _LIBC_SYNCFS  # noqa: PLW0603 - looked up once, on first use (not at import)
    if _LIBC_SYNCFS is None:
        try:
            function = ctypes.CDLL(None, use_errno=True).syncfs
        except (AttributeError, OSError):
            return None
        function.argtypes = [ctypes.c_int]
        function.restype = ctypes.c_int
        _LIBC_SYNCFS = function
    return _LIBC_SYNCFS


def _make_durable(root: Path, files: Sequence[Path]) -> None:
    """Flush `files` (and renames under `root`) to disk: one syncfs, else fsync each file."""
    syncfs = _syncfs()
    if syncfs is not None:
        descriptor = os.open(root, os.O_RDONLY)
        try:
            if syncfs(descriptor) != 0:
                error = ctypes.get_errno()
                raise OSError(error, os.strerror(error))
        finally:
            os.close(descriptor)
        return
    for path in files:
        descriptor = os.open(path, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


def _put_many(archive: Archive, payloads: Sequence[bytes]) -> list[str]:
    """Archive many payloads durably with two filesystem syncs instead of two per file.

    Same guarantee as `Archive.put`: every file is written to a temporary name and made
    durable before it is renamed into place, and the renames are durable before this
    returns, so a ledger row committed afterwards never names a missing or partial file.
    """
    digests: list[str] = []
    staged: list[tuple[Path, Path]] = []
    seen: set[str] = set()
    try:
        for data in payloads:
            digest = sha256_hex(data)
            digests.append(digest)
            if digest in seen:
                continue
            seen.add(digest)
            target = archive.path_for(digest)
            if _holds(target, len(data)):
                continue
            temporary = target.with_name(f".tmp-{os.getpid()}-{digest}")
            staged.append((temporary, target))
            _write_new(temporary, data, sync=False)
        if not staged:
            return digests
        _make_durable(archive.root, [temporary for temporary, _ in staged])
        for temporary, target in staged:
            os.replace(temporary, target)
        _make_durable(archive.root, sorted({target.parent for _, target in staged}))
    except OSError as exc:
        for temporary, _ in staged:
            temporary.unlink(missing_ok=True)
        raise StorageError(
            f"cannot write to the archive {archive.root}: {exc.strerror} — check storage.path "
            "and free space; the next poll fetches these messages again"
        ) from exc
    return digests
