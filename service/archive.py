"""A content-addressed archive: raw messages and attachments stored under their SHA-256.

Writes go to a temporary file in the same directory, are fsynced, then renamed into
place, so a crash leaves either nothing or the whole file. An existing file is never
overwritten: the same name means the same bytes.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from config.errors import StorageError


def sha256_hex(data: bytes) -> str:
    """The hex SHA-256 of `data`, the name everything is stored under."""
    return hashlib.sha256(data).hexdigest()


class Archive:
    """Files named by their SHA-256 under `root/aa/bb/<sha256>`."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path_for(self, sha256: str) -> Path:
        """Where the file with this hash lives (whether or not it exists yet)."""
        if len(sha256) != 64 or any(ch not in "0123456789abcdef" for ch in sha256):
            raise StorageError(f"not a SHA-256 name: {sha256!r}")
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def put(self, data: bytes) -> str:
        """Store `data` durably and return its SHA-256; storing it again is a cheap no-op."""
        digest = sha256_hex(data)
        target = self.path_for(digest)
        if target.exists() and target.stat().st_size == len(data):
            return digest
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
            try:
                with os.fdopen(handle, "wb") as stream:
                    stream.write(data)
                    stream.flush()
                    os.fsync(stream.fileno())
                os.replace(temporary, target)
            except BaseException:
                Path(temporary).unlink(missing_ok=True)
                raise
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

    def has(self, sha256: str) -> bool:
        """Whether the archive holds this hash."""
        return self.path_for(sha256).exists()
