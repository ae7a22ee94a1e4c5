"""Shared reading of spreadsheet exports: .xlsx and .csv (UTF-8, UTF-8 with BOM, GBK).

Importers describe their columns as `field -> header synonyms`; this module finds the header
row by those synonyms, honours per-file overrides, and hands back one dict per data row with
its 1-based sheet row number, so that every message can name the row a person should look at.
"""

from __future__ import annotations

import csv
import io
import re
import unicodedata
import warnings
import zipfile
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time
from typing import NoReturn

from config.errors import ConfigError, ParseError
from parsers.model import Problem

CellValue = str | datetime
"""A cell as importers see it: text, or a date-time when the spreadsheet stored one."""

#: Data rows beyond this are refused: an export of a campaign has hundreds, not millions.
MAX_ROWS = 50_000
#: Columns beyond this are ignored.
MAX_COLUMNS = 200
#: How many rows from the top of a sheet may precede the header row (titles, notes).
HEADER_SCAN_ROWS = 20
#: Zip packages with more entries or more declared inflated bytes than this are refused.
MAX_ZIP_ENTRIES = 2_000
MAX_ZIP_INFLATED_BYTES = 256 * 1024 * 1024

_ZIP_MAGIC = b"PK\x03\x04"
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_PARENTHESISED = re.compile(r"\([^)]*\)")
_HEADER_NOISE = re.compile(r"^[*＊]+|[*＊:：]+$")
_DELIMITERS = ",\t;"


@dataclass(frozen=True)
class SheetRow:
    """One row of a sheet with its 1-based row number as a spreadsheet program shows it."""

    number: int
    cells: tuple[CellValue, ...]


@dataclass(frozen=True)
class Sheet:
    """The rows of one worksheet (a CSV file is one sheet named after the file)."""

    name: str
    rows: list[SheetRow]


@dataclass(frozen=True)
class TableRecord:
    """One non-blank data row: the mapped fields' cell values (blank cells are "")."""

    row_number: int
    values: dict[str, CellValue]

    def text(self, name: str) -> str:
        """The field's value as stripped text ("" when absent or blank)."""
        return cell_text(self.values.get(name, ""))


@dataclass
class Table:
    """The data rows under the header row that matched, plus warnings about the header."""

    sheet: str
    header_row: int
    columns: dict[str, int]
    records: list[TableRecord]
    problems: list[Problem] = field(default_factory=list)


def header_key(text: str) -> str:
    """Fold a header as written (spaces, widths, star marks, trailing colon, case) to a key."""
    folded = unicodedata.normalize("NFKC", text)
    squeezed = "".join(ch for ch in folded if not ch.isspace())
    return _HEADER_NOISE.sub("", squeezed).casefold()


def cell_text(value: CellValue) -> str:
    """A cell as stripped text; date-times in ISO form."""
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    return value.strip(" \t\r\n\u3000\ufeff")


def read_table(
    data: bytes,
    filename: str,
    synonyms: Mapping[str, tuple[str, ...]],
    *,
    required: Collection[str],
    column_overrides: Mapping[str, str] | None = None,
) -> Table:
    """Read an .xlsx or .csv export and return its records under the header row found.

    `synonyms` maps our field names to header texts; `column_overrides` maps a field name
    to the header text this particular file uses. Raises `ParseError` when the file cannot
    be read or no row holds all `required` columns.
    """
    overrides = dict(column_overrides or {})
    unknown = sorted(set(overrides) - set(synonyms))
    if unknown:
        raise ConfigError(
            f"column overrides name unknown fields {unknown}; known: {sorted(synonyms)}",
            key="column_overrides",
        )
    lookup = _header_lookup(synonyms, overrides)
    sheets = read_sheets(data, filename)
    best: tuple[int, Sheet, SheetRow, dict[str, int]] | None = None
    for sheet in sheets:
        for row in sheet.rows[:HEADER_SCAN_ROWS]:
            columns = _match_header(row, lookup)
            if best is None or len(columns) > best[0]:
                best = (len(columns), sheet, row, columns)
            if set(required) <= set(columns):
                return _records_under(sheet, row, columns, filename)
    missing = sorted(set(required) - set(best[3] if best else {}))
    wanted = "; ".join(f"{name}: {' / '.join(synonyms[name])}" for name in missing)
    raise ParseError(
        f"{filename}: no header row with the required columns in the first "
        f"{HEADER_SCAN_ROWS} rows; missing {wanted}. Check that this is the right export, "
        "or set a column override for a column the file names differently.",
        filename=filename,
    )


def _header_lookup(
    synonyms: Mapping[str, tuple[str, ...]], overrides: Mapping[str, str]
) -> dict[str, str]:
    """Header key -> field name; an override wins over every synonym."""
    lookup = {header_key(text): name for name, texts in synonyms.items() for text in texts}
    for name, text in overrides.items():
        lookup = {key: value for key, value in lookup.items() if value != name}
        lookup[header_key(text)] = name
    return lookup


def _match_header(row: SheetRow, lookup: Mapping[str, str]) -> dict[str, int]:
    """Field name -> column index for the cells of `row` that are known headers (first wins)."""
    columns: dict[str, int] = {}
    for index, cell in enumerate(row.cells):
        if not isinstance(cell, str) or not cell.strip():
            continue
        key = header_key(cell)
        name = lookup.get(key) or lookup.get(_PARENTHESISED.sub("", key))
        if name is not None and name not in columns:
            columns[name] = index
    return columns


def _records_under(sheet: Sheet, header: SheetRow, columns: dict[str, int], filename: str) -> Table:
    """The non-blank rows after `header`, mapped to fields."""
    records = []
    for row in sheet.rows:
        if row.number <= header.number:
            continue
        if not any(cell_text(cell) for cell in row.cells):
            continue
        values = {
            name: (row.cells[index] if index < len(row.cells) else "")
            for name, index in columns.items()
        }
        records.append(TableRecord(row_number=row.number, values=values))
    return Table(sheet=sheet.name, header_row=header.number, columns=columns, records=records)


def read_sheets(data: bytes, filename: str) -> list[Sheet]:
    """Read every sheet of an .xlsx, or the one table of a .csv, choosing by content."""
    if data.startswith(_ZIP_MAGIC):
        return _read_xlsx(data, filename)
    if data.startswith(_OLE_MAGIC):
        raise ParseError(
            f"{filename}: an old Excel 97-2003 (.xls) or other OLE file; "
            "open it in Excel or WPS and save it as .xlsx or .csv.",
            filename=filename,
        )
    if filename.lower().endswith((".xlsx", ".xlsm")):
        raise ParseError(
            f"{filename}: named .xlsx but not a zip package; the file is damaged or mislabelled, "
            "download the export again.",
            filename=filename,
        )
    return [Sheet(name=filename, rows=list(_csv_rows(decode_text(data, filename), filename)))]


def decode_text(data: bytes, filename: str) -> str:
    """Decode a CSV: UTF-8 with or without BOM, UTF-16 with BOM, else GBK (as GB18030)."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        encodings: tuple[str, ...] = ("utf-16",)
    elif data.startswith(b"\xef\xbb\xbf"):
        encodings = ("utf-8-sig",)
    else:
        # GB18030 is a superset of GBK and GB2312, so every GBK export decodes with it.
        encodings = ("utf-8", "gb18030")
    for encoding in encodings:
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError:
            continue
        if "\x00" in text:
            break
        return text
    raise ParseError(
        f"{filename}: neither an .xlsx nor a text CSV in UTF-8 or GBK; "
        "export the list again as .xlsx or as CSV (UTF-8).",
        filename=filename,
    )


def _csv_rows(text: str, filename: str) -> Iterator[SheetRow]:
    """Rows of a CSV text, numbered from 1, with the delimiter guessed from the first line."""
    first_line = text.split("\n", 1)[0]
    delimiter = max(_DELIMITERS, key=first_line.count)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        for number, cells in enumerate(reader, start=1):
            if number > MAX_ROWS:
                _refuse_size(filename)
            yield SheetRow(number=number, cells=tuple(cells[:MAX_COLUMNS]))
    except csv.Error as exc:
        raise ParseError(
            f"{filename}: the CSV is malformed near line {reader.line_num} ({exc}); "
            "export it again from the online system.",
            filename=filename,
        ) from exc


def _refuse_size(filename: str) -> NoReturn:
    raise ParseError(
        f"{filename}: more than {MAX_ROWS:,} rows; this is not an export of this campaign.",
        filename=filename,
    )


def _read_xlsx(data: bytes, filename: str) -> list[Sheet]:
    """Read all sheets of an .xlsx with openpyxl in read-only mode, after a zip-bomb check."""
    import openpyxl  # deferred: only .xlsx reading pays for the import

    _check_zip(data, filename)
    try:
        with warnings.catch_warnings():
            # openpyxl warns about styles and extensions it ignores; they do not matter here.
            warnings.simplefilter("ignore")
            workbook = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
            try:
                return [
                    Sheet(name=worksheet.title, rows=list(_xlsx_rows(worksheet, filename)))
                    for worksheet in workbook.worksheets
                ]
            finally:
                workbook.close()
    except ParseError:
        raise
    except Exception as exc:  # openpyxl raises KeyError, ValueError, zip errors, XML errors
        raise ParseError(
            f"{filename}: not a readable .xlsx ({type(exc).__name__}: {exc}); "
            "open it in Excel or WPS and save it again, or export it as CSV.",
            filename=filename,
        ) from exc


def _check_zip(data: bytes, filename: str) -> None:
    """Refuse zip packages whose entry count or declared size is out of proportion."""
    try:
        entries = zipfile.ZipFile(io.BytesIO(data)).infolist()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        raise ParseError(
            f"{filename}: a damaged zip package, not a readable .xlsx ({exc}); "
            "download the export again.",
            filename=filename,
        ) from exc
    declared = sum(entry.file_size for entry in entries)
    if len(entries) > MAX_ZIP_ENTRIES or declared > MAX_ZIP_INFLATED_BYTES:
        raise ParseError(
            f"{filename}: refused: {len(entries)} entries declaring {declared:,} bytes; "
            "this is not an ordinary spreadsheet export.",
            filename=filename,
        )


def _xlsx_rows(worksheet: object, filename: str) -> Iterator[SheetRow]:
    """Rows of a read-only worksheet, with cells converted to `CellValue`."""
    rows: Iterable[tuple[object, ...]] = worksheet.iter_rows(  # type: ignore[attr-defined]
        values_only=True, max_col=MAX_COLUMNS
    )
    for number, values in enumerate(rows, start=1):
        if number > MAX_ROWS:
            _refuse_size(filename)
        yield SheetRow(number=number, cells=tuple(_cell_value(value) for value in values))


def _cell_value(value: object) -> CellValue:
    """Convert what openpyxl returns to text or a date-time; whole floats lose their ".0"."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value
    if isinstance(value, date):
        return datetime.combine(value, time())
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
