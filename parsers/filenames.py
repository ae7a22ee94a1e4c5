"""File names and header values made safe to store, show and put back into a header.

Senders' names are kept for display elsewhere; what this module returns has no path parts,
no control or line-break characters, no leading dots and a bounded length, and keeps Chinese.
"""

from __future__ import annotations

import re
import unicodedata

MAX_FILENAME_BYTES = 200
FALLBACK_FILENAME = "attachment"

_UNSAFE_IN_HEADER = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029\ufeff]")
_UNSAFE_IN_FILENAME = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\ufeff]")
_RESERVED_IN_FILENAME = re.compile(r'[<>:"|?*]')
_RUNS_OF_SPACE = re.compile(r"\s+")


def has_unsafe_characters(value: str) -> bool:
    """Whether `value` holds CR, LF or other control characters that must never reach a header."""
    return _UNSAFE_IN_HEADER.search(value) is not None


def strip_unsafe_characters(value: str) -> str:
    """Replace line breaks and control characters by spaces and collapse the whitespace."""
    if not has_unsafe_characters(value) and "\t" not in value:
        return value.strip()
    return _RUNS_OF_SPACE.sub(" ", _UNSAFE_IN_HEADER.sub(" ", value).replace("\t", " ")).strip()


def decode_unlabelled_bytes(raw: bytes) -> str:
    """Decode text that names no charset: UTF-8 when valid, else GBK (as GB18030), else Latin-1."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        pass
    try:
        return raw.decode("gb18030")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def sanitize_filename(name: str) -> str:
    """Return `name` as a safe base name: no directories, controls or leading dots, <= 200 bytes."""
    normalized = unicodedata.normalize("NFC", name).replace("\\", "/")
    base = normalized.rsplit("/", 1)[-1]
    base = _RESERVED_IN_FILENAME.sub("_", _UNSAFE_IN_FILENAME.sub(" ", base))
    base = _RUNS_OF_SPACE.sub(" ", base).strip().lstrip(".").strip()
    base = base.rstrip(". ")
    if not base:
        return FALLBACK_FILENAME
    return _shorten(base, MAX_FILENAME_BYTES)


def _shorten(name: str, max_bytes: int) -> str:
    """Cut the stem so that the UTF-8 name fits in `max_bytes`, keeping a short extension."""
    if len(name.encode("utf-8")) <= max_bytes:
        return name
    stem, dot, extension = name.rpartition(".")
    if not dot or not stem or len(extension) > 16:
        stem, extension = name, ""
    suffix = f".{extension}" if extension else ""
    budget = max_bytes - len(suffix.encode("utf-8"))
    shortened = stem.encode("utf-8")[:budget].decode("utf-8", "ignore").rstrip(". ")
    return f"{shortened or FALLBACK_FILENAME}{suffix}"
