"""A guarded reader for OOXML packages (.docx): zip bombs and XML entity tricks are refused.

A .docx is a zip of XML parts written by whoever sent the mail. Before anything is inflated
the entry count and the declared sizes and ratios are checked; every read is capped again
because declared sizes can lie; XML with a DOCTYPE or entity declaration is refused outright.
"""

from __future__ import annotations

import io
import posixpath
import struct
import zipfile
import zlib
from dataclasses import dataclass
from typing import Final, NoReturn
from xml.etree import ElementTree
from xml.parsers import expat

from config.errors import ParseError

MAX_ENTRIES: Final = 2_000
MAX_TOTAL_INFLATED_BYTES: Final = 256 * 1024 * 1024
MAX_PART_BYTES: Final = 64 * 1024 * 1024
MAX_COMPRESSION_RATIO: Final = 200
RATIO_CHECK_ABOVE_BYTES: Final = 1024 * 1024

ZIP_MAGIC: Final = b"PK\x03\x04"
_RELATIONSHIPS_NS: Final = "http://schemas.openxmlformats.org/package/2006/relationships"
_OFFICE_DOCUMENT_TYPES: Final = (
    "http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument",
    "http://purl.oclc.org/ooxml/officeDocument/relationships/officeDocument",
)
DEFAULT_MAIN_PART: Final = "word/document.xml"
_INFLATE_ERRORS: Final = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    zlib.error,
    struct.error,
    NotImplementedError,
    RuntimeError,
    EOFError,
    OSError,
    ValueError,
)


@dataclass(frozen=True)
class OoxmlPackage:
    """An opened, size-checked OOXML package; parts are inflated only on demand, capped."""

    archive: zipfile.ZipFile
    filename: str

    def has_part(self, name: str) -> bool:
        """Whether the package holds a part of that name."""
        return name in self.archive.NameToInfo

    def read_part(self, name: str, *, limit: int = MAX_PART_BYTES) -> bytes:
        """Inflate one part, refusing it when it turns out larger than `limit` bytes."""
        try:
            with self.archive.open(name) as stream:
                content = stream.read(limit + 1)
        except KeyError as exc:
            raise ParseError(
                f"{self.filename}: the package has no part {name!r}; "
                "it is not a Word document, ask the sender for a .docx",
                filename=self.filename,
            ) from exc
        except _INFLATE_ERRORS as exc:
            raise ParseError(
                f"{self.filename}: part {name!r} cannot be inflated ({exc}); "
                "the file is damaged, ask the sender to send it again",
                filename=self.filename,
            ) from exc
        if len(content) > limit:
            _refuse_bomb(self.filename, f"part {name!r} inflates beyond {limit} bytes")
        return content

    def parse_part(self, name: str, *, limit: int = MAX_PART_BYTES) -> ElementTree.Element:
        """Inflate and parse one XML part with entity declarations refused."""
        return parse_xml(self.read_part(name, limit=limit), filename=self.filename, part=name)

    def main_document_name(self) -> str:
        """The main document part named by the package relationships, else word/document.xml."""
        if not self.has_part("_rels/.rels"):
            return DEFAULT_MAIN_PART
        relationships = self.parse_part("_rels/.rels", limit=1024 * 1024)
        for relationship in relationships.iter(f"{{{_RELATIONSHIPS_NS}}}Relationship"):
            if relationship.get("Type") in _OFFICE_DOCUMENT_TYPES:
                target = relationship.get("Target", "").lstrip("/")
                return posixpath.normpath(target) if target else DEFAULT_MAIN_PART
        return DEFAULT_MAIN_PART


def _refuse_bomb(filename: str, why: str) -> NoReturn:
    raise ParseError(
        f"{filename}: refused to unpack: {why}; this is not an ordinary Word document, "
        "ask the sender for a plain .docx",
        filename=filename,
    )


def open_package(data: bytes, *, filename: str = "") -> OoxmlPackage:
    """Open `data` as a zip after checking entry count, declared sizes and ratios."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        entries = archive.infolist()
    except _INFLATE_ERRORS as exc:
        raise ParseError(
            f"{filename}: not a Word document (not a readable zip package: {exc}); "
            "ask the sender for a .docx saved from Word or WPS",
            filename=filename,
        ) from exc
    if len(entries) > MAX_ENTRIES:
        _refuse_bomb(filename, f"{len(entries)} entries (at most {MAX_ENTRIES})")
    total = sum(entry.file_size for entry in entries)
    if total > MAX_TOTAL_INFLATED_BYTES:
        _refuse_bomb(filename, f"it declares {total} inflated bytes")
    for entry in entries:
        ratio = entry.file_size / max(entry.compress_size, 1)
        if entry.file_size > RATIO_CHECK_ABOVE_BYTES and ratio > MAX_COMPRESSION_RATIO:
            _refuse_bomb(filename, f"{entry.filename!r} is compressed {ratio:.0f} to 1")
    return OoxmlPackage(archive=archive, filename=filename)


class _EntityDeclarationError(Exception):
    """Raised inside the expat callbacks; turned into a ParseError by `parse_xml`."""


def _refuse_declaration(*_args: object) -> None:
    raise _EntityDeclarationError


def parse_xml(content: bytes, *, filename: str = "", part: str = "") -> ElementTree.Element:
    """Parse XML into an ElementTree, refusing any DOCTYPE or entity declaration.

    A first pass with bare expat stops at the first declaration, before anything expands;
    only a document without one is then built into a tree (both passes run in C).
    """
    guard = expat.ParserCreate()
    guard.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    guard.StartDoctypeDeclHandler = _refuse_declaration
    guard.EntityDeclHandler = _refuse_declaration
    guard.ExternalEntityRefHandler = _refuse_external_entity
    try:
        guard.Parse(content, True)
        return ElementTree.fromstring(content)
    except _EntityDeclarationError as exc:
        raise ParseError(
            f"{filename}: {part or 'XML'} declares a DOCTYPE or entities, which Word never "
            "writes; refused as possibly hostile, ask the sender to save it again from Word",
            filename=filename,
        ) from exc
    except (expat.ExpatError, ElementTree.ParseError, ValueError) as exc:
        raise ParseError(
            f"{filename}: {part or 'XML'} is not well-formed XML ({exc}); "
            "the document is damaged, ask the sender to save it again",
            filename=filename,
        ) from exc


def _refuse_external_entity(*_args: object) -> int:
    raise _EntityDeclarationError
