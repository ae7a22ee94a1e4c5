"""Read a recommendation form (推荐表) from a Word document, by its labels, not by positions.

The document XML is read directly (through the guarded reader in `safe_zip`) so that text in
content controls and legacy form fields is seen, merged cells are laid out on the table grid,
and nothing a sender wrote can expand an entity or inflate a bomb. Values keep their spelling;
only control characters and line breaks are removed, because they may reach mail headers.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import signal
import subprocess
import tempfile
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Final
from xml.etree.ElementTree import Element

from config.errors import ParseError
from parsers.labels import (
    FORM_TITLE_WORD,
    INLINE_LABEL,
    SEAL_WORDS,
    CaseColumn,
    UnitField,
    case_column_for,
    label_key,
    unit_field_for,
)
from parsers.model import CaseRow, Contact, Problem, WordForm
from parsers.safe_zip import ZIP_MAGIC, open_package

OLE2_MAGIC: Final = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
RTF_MAGIC: Final = b"{\\rtf"
LIBREOFFICE_TIMEOUT_SECONDS: Final = 120
MAX_GRID_SPAN: Final = 64

_WORD_NAMESPACES: Final = (
    "http://schemas.openxmlformats.org/wordprocessingml/2006/main",
    "http://purl.oclc.org/ooxml/wordprocessingml/main",
)
_FALLBACK_TAG: Final = "{http://schemas.openxmlformats.org/markup-compatibility/2006}Fallback"
_VAL: Final = "val"

_CONTROL_RUNS: Final = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")
_FORMAT_CHARACTERS: Final = re.compile(
    "[\u00ad\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u180e\u200b-\u200f\u202a-\u202e"
    "\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb\U000110bd\U000110cd"
    "\U00013430-\U0001343f\U0001bca0-\U0001bca3\U0001d173-\U0001d17a"
    "\U000e0001\U000e0020-\U000e007f]"
)
_DIGITS: Final = "0-9〇零一二三四五六七八九十"
_DATE: Final = re.compile(
    rf"(?P<year>[{_DIGITS}]{{4}})\s*年\s*(?P<month>[{_DIGITS}]{{1,3}})\s*月"
    rf"\s*(?P<day>[{_DIGITS}]{{1,3}})\s*[日号]"
)
_CHINESE_DIGITS: Final = {ch: value for value, ch in enumerate("〇一二三四五六七八九")} | {"零": 0}
_NOT_SIGNATURE_WORDS: Final = re.compile(r"推荐单位|日期|签字|签章|盖章|公章|[（）():：\s]")
_ATTACHMENT_MARK: Final = re.compile(r"^附件\s*[0-9一二三四五六七八九十]+[:：]?$")

LegacyConverter = Callable[[bytes, str], bytes]
"""Turns legacy .doc / WPS bytes into .docx bytes, or raises ParseError."""


def clean_value(text: str) -> str:
    """Remove line breaks, control and format characters; strip the ends, keep inner spaces."""
    return _FORMAT_CHARACTERS.sub("", _CONTROL_RUNS.sub(" ", text)).strip()


@functools.lru_cache(maxsize=512)
def _local_name_of_tag(tag: str) -> str:
    if not tag.startswith("{"):
        return ""
    namespace, _, local = tag[1:].partition("}")
    return local if namespace in _WORD_NAMESPACES else ""


def _local_name(element: Element) -> str:
    """The tag's local name when it is in the WordprocessingML namespace, else ''."""
    tag = element.tag
    return _local_name_of_tag(tag) if isinstance(tag, str) else ""


def _word_attribute(element: Element, name: str) -> str | None:
    for namespace in _WORD_NAMESPACES:
        value = element.get(f"{{{namespace}}}{name}")
        if value is not None:
            return value
    return None


def _child(element: Element, local: str) -> Element | None:
    for child in element:
        if _local_name(child) == local:
            return child
    return None


def _shows_placeholder(sdt: Element) -> bool:
    properties = _child(sdt, "sdtPr")
    return properties is not None and _child(properties, "showingPlcHdr") is not None


def element_text(element: Element, *, include_tables: bool = True) -> str:
    """All visible text under `element`: runs, content controls and form-field results.

    Paragraphs end in a newline; field codes, deleted text, placeholder text of empty
    content controls and the fallback copy of alternate content are left out.
    """
    pieces: list[str] = []
    stack: list[Element | str] = [element]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            pieces.append(item)
            continue
        local = _local_name(item)
        if local == "t":
            pieces.append(item.text or "")
            continue
        if local == "tab":
            pieces.append("\t")
            continue
        if local in ("br", "cr"):
            pieces.append("\n")
            continue
        if local == "noBreakHyphen":
            pieces.append("-")
            continue
        if local in ("sdtPr", "rPr", "pPr", "tcPr", "trPr", "tblPr", "instrText", "delText"):
            continue
        if local == "sdt" and _shows_placeholder(item):
            continue
        if local == "tbl" and item is not element and not include_tables:
            continue
        if item.tag == _FALLBACK_TAG:
            continue
        if local == "p":
            stack.append("\n")
        stack.extend(reversed(list(item)))
    return "".join(pieces)


@dataclass(frozen=True)
class _Paragraph:
    text: str


@dataclass(frozen=True)
class _Table:
    grid: list[list[str]]


def _body_blocks(container: Element) -> Iterator[_Paragraph | _Table]:
    """Paragraphs and tables in reading order; nested tables follow the table holding them."""
    for child in container:
        local = _local_name(child)
        if local == "p":
            yield _Paragraph(element_text(child))
        elif local == "tbl":
            yield _Table(_table_grid(child))
            for nested in _nested_tables(child):
                yield _Table(_table_grid(nested))
        elif local in ("sdt", "sdtContent", "customXml", "smartTag", "ins"):
            if local == "sdt" and _shows_placeholder(child):
                continue
            yield from _body_blocks(child)


def _nested_tables(table: Element) -> Iterator[Element]:
    """Tables inside the cells of `table`, at any depth, in document order."""
    for namespace in _WORD_NAMESPACES:
        for inner in table.iter(f"{{{namespace}}}tbl"):
            if inner is not table:
                yield inner


def _rows_of(table: Element) -> Iterator[Element]:
    for child in table:
        local = _local_name(child)
        if local == "tr":
            yield child
        elif local in ("sdt", "sdtContent", "customXml"):
            yield from _rows_of(child)


def _cells_of(row: Element) -> Iterator[Element]:
    for child in row:
        local = _local_name(child)
        if local == "tc":
            yield child
        elif local in ("sdt", "sdtContent", "customXml"):
            yield from _cells_of(child)


def _int_property(properties: Element | None, local: str, default: int) -> int:
    if properties is None:
        return default
    node = _child(properties, local)
    raw = _word_attribute(node, _VAL) if node is not None else None
    if raw is None or not raw.strip().isdigit():
        return default
    return max(0, min(int(raw), MAX_GRID_SPAN))


def _table_grid(table: Element) -> list[list[str]]:
    """Each row's cell texts laid out on the grid, as Word shows them.

    A cell spanning columns repeats its text in each; a vertically merged continuation
    repeats the text of the cell above, like python-docx does.
    """
    grid: list[list[str]] = []
    for row in _rows_of(table):
        before = _int_property(_child(row, "trPr"), "gridBefore", 0)
        texts: list[str] = [""] * before
        for cell in _cells_of(row):
            properties = _child(cell, "tcPr")
            span = max(1, _int_property(properties, "gridSpan", 1))
            merge = _child(properties, "vMerge") if properties is not None else None
            continues_above = merge is not None and _word_attribute(merge, _VAL) != "restart"
            if continues_above and grid and len(texts) < len(grid[-1]):
                text = grid[-1][len(texts)]
            else:
                text = element_text(cell, include_tables=False)
            texts.extend([text] * span)
            if len(texts) > MAX_GRID_SPAN:
                break
        grid.append(texts[:MAX_GRID_SPAN])
    return grid


def _without_repeats(cells: list[str]) -> list[str]:
    """Collapse neighbouring copies of one merged cell into one."""
    kept: list[str] = []
    for text in cells:
        if not kept or text != kept[-1] or not text.strip():
            kept.append(text)
    return kept


def _parse_number(raw: str) -> int | None:
    folded = unicodedata.normalize("NFKC", raw).strip()
    if folded.isdigit():
        return int(folded)
    if all(ch in _CHINESE_DIGITS or ch == "十" for ch in folded) and folded:
        if "十" not in folded:
            return int("".join(str(_CHINESE_DIGITS[ch]) for ch in folded))
        tens, _, ones = folded.partition("十")
        return (_CHINESE_DIGITS.get(tens, 1) if tens else 1) * 10 + (
            _CHINESE_DIGITS.get(ones, 0) if ones else 0
        )
    return None


def parse_date(text: str) -> date | None:
    """The first `2025年7月20日` (or 二〇二五年七月二十日) in `text`, if it is a real date."""
    match = _DATE.search(unicodedata.normalize("NFKC", text))
    if match is None:
        return None
    parts = [_parse_number(match[name]) for name in ("year", "month", "day")]
    if any(part is None for part in parts):
        return None
    year, month, day = (part or 0 for part in parts)
    try:
        return date(year, month, day)
    except ValueError:
        return None


def _row_number(raw: str) -> int | None:
    folded = unicodedata.normalize("NFKC", raw).strip().rstrip(".、")
    return int(folded) if folded.isdigit() and len(folded) < 7 else None


@dataclass
class _FormReader:
    """Walks the blocks of one document and gathers what the labels point at."""

    filename: str
    title: str | None = None
    fields: dict[UnitField, str] = field(default_factory=dict)
    opinion_lines: list[str] = field(default_factory=list)
    collecting_opinion: bool = False
    signed_on: date | None = None
    case_columns: dict[CaseColumn, int] | None = None
    case_list_closed: bool = False
    cases: list[CaseRow] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    def read(self, body: Element) -> None:
        for block in _body_blocks(body):
            if isinstance(block, _Paragraph):
                for line in block.text.split("\n"):
                    self._scan_line(line)
            else:
                self.collecting_opinion = False
                self._scan_table(block.grid)
                self.collecting_opinion = False

    def _assign(self, name: UnitField, raw_value: str) -> None:
        if name == "unit":
            raw_value = _DATE.sub("", raw_value)
        value = clean_value(clean_value(raw_value).strip("_＿"))
        if value and name not in self.fields:
            self.fields[name] = value

    def _note_signature_date(self, line: str) -> None:
        found = parse_date(line)
        if found is None:
            return
        remainder = _NOT_SIGNATURE_WORDS.sub("", _DATE.sub("", unicodedata.normalize("NFKC", line)))
        if not remainder or any(word in line for word in SEAL_WORDS):
            self.signed_on = found

    def _scan_line(self, line: str) -> None:
        stripped = clean_value(line)
        if not stripped:
            return
        self._note_signature_date(stripped)
        matches = list(INLINE_LABEL.finditer(line))
        if matches:
            self.collecting_opinion = False
            self._close_case_list()
            for index, match in enumerate(matches):
                end = matches[index + 1].start() if index + 1 < len(matches) else len(line)
                name = unit_field_for(match["label"])
                value = line[match.end() : end]
                if name == "opinion":
                    self.collecting_opinion = True
                    if clean_value(value):
                        self.opinion_lines.append(clean_value(value))
                elif name is not None:
                    self._assign(name, value)
            return
        name = unit_field_for(stripped)
        if name is not None:
            self._close_case_list()
            self.collecting_opinion = name == "opinion"
            return
        if self.collecting_opinion:
            if parse_date(stripped) is not None or stripped.startswith(("注", "备注")):
                self.collecting_opinion = False
            else:
                self.opinion_lines.append(stripped)
            return
        self._note_title(stripped)

    def _note_title(self, text: str) -> None:
        if self.title is not None or self.fields or self.cases or self.case_columns:
            return
        if FORM_TITLE_WORD in label_key(text) and not _ATTACHMENT_MARK.match(text):
            self.title = text

    def _close_case_list(self) -> None:
        if self.case_columns is not None:
            self.case_list_closed = True

    def _scan_table(self, grid: list[list[str]]) -> None:
        in_cases = self._continues_case_list(grid)
        vertical_labels: list[UnitField | None] | None = None
        index = 0
        while index < len(grid):
            row = grid[index]
            header = self._case_header(grid, index)
            if header is not None:
                columns, rows_used = header
                self.case_columns = columns
                self.case_list_closed = False
                in_cases = True
                index += rows_used
                continue
            if in_cases and not _has_unit_label(row):
                self._add_case(row)
                index += 1
                continue
            if in_cases:
                in_cases = False
                self._close_case_list()
            if vertical_labels is not None and not _has_unit_label(row):
                for name, value in zip(vertical_labels, row, strict=False):
                    if name is not None and name != "opinion":
                        self._assign(name, value)
                vertical_labels = None
                index += 1
                continue
            vertical_labels = _label_only_row(row)
            if vertical_labels is None:
                self._scan_label_row(_without_repeats(row))
            index += 1

    def _continues_case_list(self, grid: list[list[str]]) -> bool:
        """Whether a table carries on the case list of an earlier table without a header."""
        if self.case_columns is None or self.case_list_closed or not grid:
            return False
        needed = max(self.case_columns.values()) + 1
        first = grid[0]
        return len(first) >= needed and not _has_unit_label(first)

    def _case_header(
        self, grid: list[list[str]], index: int
    ) -> tuple[dict[CaseColumn, int], int] | None:
        """The case-table columns if a header (one row, or two with merged cells) starts here."""
        first = [case_column_for(text) for text in grid[index]]
        if not any(first):
            return None
        if index + 1 < len(grid):
            second_row = grid[index + 1]
            if _looks_like_header_continuation(grid[index], second_row):
                second = [
                    case_column_for(text) if text != above else None
                    for text, above in zip(second_row, grid[index], strict=False)
                ]
                combined = [
                    lower or upper
                    for upper, lower in zip(
                        first + [None] * len(second), second + [None] * len(first), strict=False
                    )
                ]
                columns = _first_positions(combined)
                if _is_case_header(columns):
                    return columns, 2
        columns = _first_positions(first)
        return (columns, 1) if _is_case_header(columns) else None

    def _add_case(self, row: list[str]) -> None:
        assert self.case_columns is not None
        values = {
            name: clean_value(row[position]) if position < len(row) else ""
            for name, position in self.case_columns.items()
        }
        title, applicant = values.get("title", ""), values.get("applicant", "")
        distinct = {clean_value(text) for text in row if clean_value(text)}
        spans_whole_row = len(distinct) == 1 and len(row) > 1 and title and title == applicant
        if spans_whole_row:
            self._scan_label_row(_without_repeats(row))
            return
        if not title and not applicant:
            return
        number = _row_number(values.get("row", "")) or len(self.cases) + 1
        if not title:
            self.problems.append(Problem("case_without_title", {"row": number}))
        self.cases.append(
            CaseRow(
                row=number,
                title=title,
                applicant=applicant,
                category=values.get("category") or None,
                ref=values.get("ref") or None,
                rank=values.get("rank") or None,
                note=values.get("note") or None,
            )
        )

    def _scan_label_row(self, cells: list[str]) -> None:
        index = 0
        while index < len(cells):
            text = cells[index]
            name = unit_field_for(text)
            neighbour = cells[index + 1] if index + 1 < len(cells) else None
            if name is not None and neighbour is not None and _is_plain_value(neighbour):
                self._close_case_list()
                if name == "opinion":
                    self.collecting_opinion = True
                    for line in neighbour.split("\n"):
                        self._scan_line(line)
                    self.collecting_opinion = False
                else:
                    self._assign(name, neighbour)
                    self._note_signature_date(clean_value(neighbour))
                index += 2
                continue
            for line in text.split("\n"):
                self._scan_line(line)
            self.collecting_opinion = False
            index += 1

    def form(self, *, document_format: str) -> WordForm:
        if not self.cases:
            self.problems.append(
                Problem("no_cases") if self.case_columns is not None else Problem("no_case_table")
            )
        if "unit" not in self.fields:
            self.problems.append(Problem("no_unit"))
        opinion = clean_value(" ".join(self.opinion_lines))
        return WordForm(
            unit=self.fields.get("unit"),
            contact=Contact(
                name=self.fields.get("contact_name"),
                title=self.fields.get("contact_title"),
                phone=self.fields.get("phone"),
                mobile=self.fields.get("mobile"),
                email=self.fields.get("email"),
            ),
            cases=self.cases,
            title=self.title,
            opinion=opinion or None,
            signed_on=self.signed_on,
            format=document_format,
            problems=self.problems,
        )


def _is_plain_value(text: str) -> bool:
    """Whether a cell holds a value rather than another label."""
    return unit_field_for(text) is None and INLINE_LABEL.search(text) is None


def _has_unit_label(row: list[str]) -> bool:
    return any(unit_field_for(text) or INLINE_LABEL.search(text) for text in row if text.strip())


def _label_only_row(row: list[str]) -> list[UnitField | None] | None:
    """Labels of a row made only of labels (values in the row below), else None."""
    cells = [text for text in row if text.strip()]
    labels = [unit_field_for(text) for text in row]
    if len(cells) >= 2 and all(unit_field_for(text) for text in cells):
        return labels
    return None


def _looks_like_header_continuation(upper: list[str], lower: list[str]) -> bool:
    """Whether `lower` is the second row of a two-row header (merged cells above it)."""
    found_new = False
    for position, text in enumerate(lower):
        if not text.strip():
            continue
        above = upper[position] if position < len(upper) else ""
        if text == above:
            continue
        if case_column_for(text) is None:
            return False
        found_new = True
    return found_new


def _first_positions(columns: list[CaseColumn | None]) -> dict[CaseColumn, int]:
    positions: dict[CaseColumn, int] = {}
    for position, name in enumerate(columns):
        if name is not None and name not in positions:
            positions[name] = position
    return positions


def _is_case_header(columns: dict[CaseColumn, int]) -> bool:
    return "title" in columns and ("applicant" in columns or "row" in columns)


def _read_docx(data: bytes, filename: str, *, document_format: str) -> WordForm:
    package = open_package(data, filename=filename)
    root = package.parse_part(package.main_document_name())
    body = _child(root, "body") if _local_name(root) == "document" else None
    if body is None:
        raise ParseError(
            f"{filename}: not a Word document (the package holds no WordprocessingML body); "
            "ask the sender for the form as .docx",
            filename=filename,
        )
    reader = _FormReader(filename=filename)
    try:
        reader.read(body)
    except RecursionError as exc:
        raise ParseError(
            f"{filename}: the document nests content controls too deeply to be a form; "
            "ask the sender to save it again from Word",
            filename=filename,
        ) from exc
    return reader.form(document_format=document_format)


def document_text(data: bytes, filename: str = "") -> str:
    """All text of a .docx main document, one paragraph a line; ParseError if unreadable."""
    package = open_package(data, filename=filename)
    root = package.parse_part(package.main_document_name())
    if _local_name(root) != "document":
        raise ParseError(f"{filename}: not a Word document", filename=filename)
    return element_text(root)


def convert_with_libreoffice(data: bytes, filename: str) -> bytes:
    """Convert legacy .doc / WPS bytes to .docx with a headless LibreOffice, time-limited."""
    office = shutil.which("soffice") or shutil.which("libreoffice")
    if office is None:
        raise ParseError(
            f"{filename}: a legacy Word/WPS document; reading it needs LibreOffice "
            "(apt install libreoffice-writer-nogui) on this host, "
            "or ask the sender for the form saved as .docx",
            filename=filename,
            code="word_legacy_unconverted",
        )
    suffix = Path(filename).suffix.lower() if Path(filename).suffix.lower() in _LEGACY else ".doc"
    with tempfile.TemporaryDirectory(prefix="intake-doc-") as workdir:
        source = Path(workdir) / f"form{suffix}"
        source.write_bytes(data)
        command = [
            office,
            f"-env:UserInstallation=file://{workdir}/profile",
            "--headless",
            "--norestore",
            "--convert-to",
            "docx",
            "--outdir",
            workdir,
            str(source),
        ]
        process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        try:
            _, errors = process.communicate(timeout=LIBREOFFICE_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired as exc:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            raise ParseError(
                f"{filename}: LibreOffice did not convert it within "
                f"{LIBREOFFICE_TIMEOUT_SECONDS} s; ask the sender for a .docx",
                filename=filename,
                code="word_legacy_unconverted",
            ) from exc
        converted = Path(workdir) / "form.docx"
        if process.returncode != 0 or not converted.exists():
            detail = errors.decode("utf-8", "replace").strip()[:200]
            raise ParseError(
                f"{filename}: LibreOffice could not convert it ({detail or process.returncode}); "
                "ask the sender for a .docx",
                filename=filename,
                code="word_legacy_unconverted",
            )
        return converted.read_bytes()


_LEGACY: Final = (".doc", ".wps", ".rtf", ".dot", ".wpt")
_ENCRYPTED_STREAM: Final = "EncryptedPackage".encode("utf-16-le")


def read_word_form(
    data: bytes,
    filename: str = "",
    *,
    convert_legacy: LegacyConverter = convert_with_libreoffice,
) -> WordForm:
    """Read a recommendation form from .docx (or legacy .doc / WPS via `convert_legacy`).

    Raises ParseError, naming `filename`, only when the bytes are not a readable Word document.
    """
    if data.startswith(ZIP_MAGIC):
        return _read_docx(data, filename, document_format="docx")
    if data.startswith(OLE2_MAGIC) and _ENCRYPTED_STREAM in data:
        raise ParseError(
            f"{filename}: the document is password-protected; "
            "ask the sender for a copy without a password",
            filename=filename,
        )
    if data.startswith((OLE2_MAGIC, RTF_MAGIC)):
        document_format = "wps" if filename.lower().endswith((".wps", ".wpt")) else "doc"
        converted = convert_legacy(data, filename)
        return _read_docx(converted, filename, document_format=document_format)
    raise ParseError(
        f"{filename}: not a Word document (neither .docx nor legacy .doc/WPS); "
        "ask the sender for the form saved from Word or WPS as .docx",
        filename=filename,
    )
