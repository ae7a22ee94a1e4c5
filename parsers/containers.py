"""Files that carry other files: zip archives and TNEF (winmail.dat), unpacked within limits.

Hostile archives are expected. Every limit that stops extraction becomes a `Problem` that
says which archive, which entry and what the sender can do; nothing here raises.
"""

from __future__ import annotations

import io
import zipfile
import zlib
from dataclasses import dataclass, field

from tnefparse import TNEF

from parsers.filenames import decode_unlabelled_bytes
from parsers.model import Problem

MIB = 1024 * 1024
ZIP_SIGNATURE = b"PK\x03\x04"
EMPTY_ZIP_SIGNATURE = b"PK\x05\x06"
TNEF_SIGNATURE = b"\x78\x9f\x3e\x22"
ZIP_CONTENT_TYPES = frozenset(
    {"application/zip", "application/x-zip-compressed", "application/x-zip", "multipart/x-zip"}
)
_DOCUMENT_MARKERS = ("[Content_Types].xml", "mimetype", "META-INF/MANIFEST.MF")
_READ_CHUNK = 256 * 1024
_UTF8_NAME_FLAG = 0x800
_ENCRYPTED_FLAG = 0x1


@dataclass(frozen=True)
class Limits:
    """How much work one message may cause before the rest is skipped and reported."""

    max_parts: int = 1000
    max_depth: int = 16
    max_inflated_bytes: int = 256 * MIB
    max_compression_ratio: float = 200.0
    ratio_checked_above_bytes: int = 1 * MIB
    max_zip_entries: int = 2000


@dataclass
class InflationBudget:
    """Bytes that unpacking may still produce for the whole message, shared by every archive."""

    remaining: int


@dataclass(frozen=True)
class UnpackedFile:
    """One file taken out of a container; `container` names where it came from."""

    filename: str
    data: bytes
    container: str


@dataclass
class Unpacked:
    """What a container gave up; `complete` is false when something inside was left behind."""

    files: list[UnpackedFile] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    complete: bool = True
    body_text: str = ""
    body_html: str = ""


def is_tnef(data: bytes, filename: str, content_type: str) -> bool:
    """Whether a part is a TNEF stream (Outlook's winmail.dat)."""
    return data.startswith(TNEF_SIGNATURE) or (
        content_type in {"application/ms-tnef", "application/vnd.ms-tnef"}
        or filename.lower() == "winmail.dat"
    )


def is_zip_archive(data: bytes, filename: str, content_type: str) -> bool:
    """Whether a part is a zip meant as a folder of files, not an Office or ODF document."""
    if not data.startswith((ZIP_SIGNATURE, EMPTY_ZIP_SIGNATURE)):
        return False
    lowered = filename.lower()
    if lowered.endswith(".zip") or content_type in ZIP_CONTENT_TYPES:
        return True
    return "." not in lowered.rsplit("/", 1)[-1]


def unpack_zip(
    data: bytes, archive_name: str, *, limits: Limits, budget: InflationBudget, depth: int = 1
) -> Unpacked:
    """Extract the files of a zip (nested zips too) within `limits`, decoding GBK entry names."""
    label = f"zip:{archive_name}"
    result = Unpacked()
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        entries = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError) as exc:
        result.complete = False
        result.problems.append(
            Problem("zip_unreadable", {"file": archive_name, "detail": str(exc)})
        )
        return result
    if any(entry.filename in _DOCUMENT_MARKERS for entry in entries[:8]):
        result.complete = False
        return result
    with archive:
        if len(entries) > limits.max_zip_entries:
            result.complete = False
            result.problems.append(
                Problem(
                    "zip_too_many_entries",
                    {
                        "file": archive_name,
                        "count": len(entries),
                        "limit": limits.max_zip_entries,
                    },
                )
            )
            entries = entries[: limits.max_zip_entries]
        for entry in entries:
            if entry.is_dir():
                continue
            name = _entry_name(entry)
            stop = _extract_entry(
                archive,
                entry,
                name=name,
                archive_name=archive_name,
                limits=limits,
                budget=budget,
                result=result,
            )
            if stop:
                break
    nested: list[UnpackedFile] = []
    for extracted in result.files:
        if not is_zip_archive(extracted.data, extracted.filename, ""):
            nested.append(UnpackedFile(extracted.filename, extracted.data, label))
            continue
        if depth >= limits.max_depth:
            result.complete = False
            result.problems.append(
                Problem(
                    "zip_too_deep",
                    {
                        "file": archive_name,
                        "inner": extracted.filename,
                        "limit": limits.max_depth,
                    },
                )
            )
            nested.append(UnpackedFile(extracted.filename, extracted.data, label))
            continue
        inner_name = extracted.filename.rsplit("/", 1)[-1]
        inner = unpack_zip(
            extracted.data, inner_name, limits=limits, budget=budget, depth=depth + 1
        )
        result.problems.extend(inner.problems)
        # the inner archive is a file of its own, listed before what it holds
        nested.append(UnpackedFile(extracted.filename, extracted.data, label))
        nested.extend(inner.files)
        if not inner.complete:
            result.complete = False
    result.files = nested
    return result


def _entry_name(entry: zipfile.ZipInfo) -> str:
    """Decode a zip entry name: UTF-8 when flagged, else UTF-8 or GBK as the bytes allow."""
    if entry.flag_bits & _UTF8_NAME_FLAG:
        return entry.filename
    try:
        raw = entry.filename.encode("cp437")
    except UnicodeEncodeError:
        return entry.filename
    return decode_unlabelled_bytes(raw)


def _extract_entry(
    archive: zipfile.ZipFile,
    entry: zipfile.ZipInfo,
    *,
    name: str,
    archive_name: str,
    limits: Limits,
    budget: InflationBudget,
    result: Unpacked,
) -> bool:
    """Extract one entry into `result`; return True when the rest of the archive must be skipped."""
    where = {"archive": archive_name, "file": name}
    if entry.flag_bits & _ENCRYPTED_FLAG:
        result.complete = False
        result.problems.append(Problem("zip_encrypted", where))
        return False
    if entry.file_size > budget.remaining:
        result.complete = False
        result.problems.append(_bomb_problem(where, entry.file_size, limits))
        return True
    if _ratio_too_high(entry.file_size, entry.compress_size, limits):
        result.complete = False
        result.problems.append(_ratio_problem(where, entry.file_size, entry.compress_size, limits))
        return False
    cap = min(entry.file_size, budget.remaining)
    chunks: list[bytes] = []
    produced = 0
    try:
        with archive.open(entry) as stream:
            while True:
                chunk = stream.read(_READ_CHUNK)
                if not chunk:
                    break
                produced += len(chunk)
                if produced > cap:
                    result.complete = False
                    if produced > budget.remaining:
                        result.problems.append(_bomb_problem(where, produced, limits))
                        return True
                    result.problems.append(
                        Problem("zip_size_mismatch", {**where, "size": entry.file_size})
                    )
                    return False
                if _ratio_too_high(produced, entry.compress_size, limits):
                    result.complete = False
                    result.problems.append(
                        _ratio_problem(where, produced, entry.compress_size, limits)
                    )
                    return False
                chunks.append(chunk)
    except (
        zipfile.BadZipFile,
        zlib.error,
        NotImplementedError,
        RuntimeError,
        OSError,
        EOFError,
        ValueError,
    ) as exc:
        result.complete = False
        result.problems.append(Problem("zip_entry_unreadable", {**where, "detail": str(exc)}))
        return False
    budget.remaining -= produced
    result.files.append(UnpackedFile(name, b"".join(chunks), f"zip:{archive_name}"))
    return False


def _ratio_too_high(inflated: int, compressed: int, limits: Limits) -> bool:
    """Whether an entry inflates suspiciously more than it weighs (a zip bomb)."""
    if inflated <= limits.ratio_checked_above_bytes:
        return False
    return inflated / max(compressed, 1) > limits.max_compression_ratio


def _bomb_problem(where: dict[str, str], size: int, limits: Limits) -> Problem:
    """Describe an archive that would inflate past the message's total budget."""
    detail = (
        f"{size / MIB:.1f} MiB, past the {limits.max_inflated_bytes / MIB:.0f} MiB allowed per "
        "message; the rest of the archive was skipped"
    )
    return Problem("zip_bomb", {**where, "detail": detail})


def _ratio_problem(where: dict[str, str], size: int, compressed: int, limits: Limits) -> Problem:
    """Describe an entry whose compression ratio marks it as a zip bomb."""
    ratio = size / max(compressed, 1)
    detail = f"{ratio:.0f} times its compressed size, above {limits.max_compression_ratio:.0f}x"
    return Problem("zip_bomb", {**where, "detail": detail})


def unpack_tnef(
    data: bytes, container_name: str, *, limits: Limits, budget: InflationBudget
) -> Unpacked:
    """Extract the files and body of an Outlook TNEF stream (winmail.dat)."""
    label = f"tnef:{container_name}"
    result = Unpacked()
    try:
        tnef = TNEF(data)
        attachments = list(tnef.attachments)
    except Exception as exc:  # tnefparse raises anything on malformed streams
        result.complete = False
        result.problems.append(
            Problem("tnef_unreadable", {"file": container_name, "detail": str(exc)})
        )
        return result
    for number, attachment in enumerate(attachments, start=1):
        if len(result.files) >= limits.max_parts:
            result.complete = False
            result.problems.append(
                Problem("tnef_too_many_files", {"file": container_name, "limit": limits.max_parts})
            )
            break
        payload = attachment.data if isinstance(attachment.data, bytes) else b""
        if len(payload) > budget.remaining:
            result.complete = False
            result.problems.append(
                _bomb_problem(
                    {"archive": container_name, "file": container_name}, len(payload), limits
                )
            )
            break
        budget.remaining -= len(payload)
        name = _tnef_attachment_name(attachment) or f"attachment-{number}"
        result.files.append(UnpackedFile(name, payload, label))
    result.body_html = _tnef_text(getattr(tnef, "htmlbody", None))
    result.body_text = _tnef_text(getattr(tnef, "body", None))
    if not attachments and not result.body_html and not result.body_text:
        result.complete = False
        result.problems.append(Problem("tnef_empty", {"file": container_name}))
    return result


def _tnef_attachment_name(attachment: object) -> str:
    """The long file name of a TNEF attachment, else its short name, decoded leniently."""
    candidates: list[object] = []
    for attribute in getattr(attachment, "mapi_attrs", []):
        if getattr(attribute, "name", None) == 0x3707:  # PR_ATTACH_LONG_FILENAME
            candidates.append(getattr(attribute, "data", None))
    candidates.append(getattr(attachment, "_name", None))
    for candidate in candidates:
        text = _tnef_text(candidate).strip("\x00").strip()
        if text:
            return text
    return ""


def _tnef_text(value: object) -> str:
    """Turn a TNEF property value (bytes, str or a list of them) into text."""
    if isinstance(value, list) and value:
        value = value[0]
    if isinstance(value, bytes):
        return decode_unlabelled_bytes(value.split(b"\x00", 1)[0] if b"\x00" in value else value)
    if isinstance(value, str):
        return value
    return ""
