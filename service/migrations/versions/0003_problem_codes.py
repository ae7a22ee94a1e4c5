"""problems as codes: message, attachment and case-row problems become {code, params}

The English sentences stored until now are read back into the catalogue's codes and
parameters (parsers/problems.py), so staff and senders read them rendered in Chinese. A
sentence no pattern recognises is kept whole as `unclassified` with it as `detail`.
Downgrade stores each problem as a string again: its detail or, without one, its code.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 22:40:00
"""

from __future__ import annotations

import re
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_Q = r"(?P<q>['\"])"  # the quote a Python repr used

# (pattern, code): each pattern reads the whole sentence as it was written until 0003.
PATTERNS: list[tuple[str, str]] = [
    (r"(?P<file>.+): the zip archive cannot be read \((?P<detail>.*)\); it is kept as one.*",
     "zip_unreadable"),
    (r"(?P<file>.+): the archive lists (?P<count>\d+) entries, more than the (?P<limit>\d+) .*",
     "zip_too_many_entries"),
    (r"(?P<file>.+): the archive (?P<inner>.+) is nested more than (?P<limit>\d+) archives .*",
     "zip_too_deep"),
    (r"(?P<archive>.+): entry " + _Q + r"(?P<file>.+)(?P=q) is password-protected.*",
     "zip_encrypted"),
    (r"(?P<archive>.+): entry " + _Q + r"(?P<file>.+)(?P=q) inflates to more than its declared "
     r"(?P<size>\d+) bytes.*", "zip_size_mismatch"),
    (r"(?P<archive>.+): entry " + _Q + r"(?P<file>.+)(?P=q) cannot be extracted "
     r"\((?P<detail>.*)\).*", "zip_entry_unreadable"),
    (r"(?P<archive>.+): entry " + _Q + r"(?P<file>.+)(?P=q) (?P<detail>(?:would inflate|"
     r"inflates \d+ times).*)", "zip_bomb"),
    (r"(?P<file>.+?) (?P<detail>(?:would inflate to|inflates \d+ times).*)", "zip_bomb"),
    (r"(?P<file>.+): the Outlook TNEF attachment cannot be read \((?P<detail>.*)\).*",
     "tnef_unreadable"),
    (r"(?P<file>.+): more than (?P<limit>\d+) files; the rest were skipped\.?",
     "tnef_too_many_files"),
    (r"(?P<file>.+): no file or text was found in this Outlook TNEF attachment.*", "tnef_empty"),
    (r"The (?P<header>.+?) " + _Q + r"(?P<value>.*)(?P=q) held line breaks or control .*",
     "control_characters"),
    (r"The (?P<header>\S+) header is too convoluted to read fully.*", "unreadable_addresses"),
    (r"The Date header " + _Q + r"(?P<value>.*)(?P=q) cannot be read.*", "unreadable_date"),
    (r"The message has more than (?P<limit>\d+) MIME parts.*", "too_many_parts"),
    (r"The message nests MIME parts more than (?P<limit>\d+) levels.*", "too_deep"),
    (r"A (?P<part>\S+) body declares the unknown charset " + _Q + r"(?P<charset>.*)(?P=q);.*",
     "unknown_charset"),
    (r"(?P<file>.+): the PDF is irregular and was repaired: (?P<detail>.*)", "pdf_irregular"),
    (r"(?P<file>.+): has (?P<pages>\d+) pages; only the first (?P<limit>\d+) were read\.?",
     "pdf_too_many_pages"),
    (r"(?P<file>.+): reading stopped at page (?P<page>\d+): over the (?P<seconds>[\d.]+) s .*",
     "pdf_time_budget"),
    (r"Reading the PDF took longer than (?P<seconds>[\d.]+) s.*", "pdf_time_budget"),
    (r"(?P<file>.+): (?P<scanned>\d+) of (?P<pages>\d+) pages are images without text\.?",
     "pdf_partly_scanned"),
    (r"(?P<file>.+): (?P<detail>encrypted and cannot be decrypted here: .*?)\.?",
     "pdf_encrypted"),
    (r"(?P<file>.+): (?P<detail>protected by a password); ask the sender .*", "pdf_encrypted"),
    (r"Page (?P<page>\d+): text not read \(too big\)\.?", "pdf_content_too_big"),
    (r"Page (?P<page>\d+): an image: (?P<detail>.*)", "pdf_image_undecodable"),
    (r"Page (?P<page>\d+): (?P<detail>.*)", "pdf_text_unreadable"),
    (r"case row (?P<row>\d+) names no case title", "case_without_title"),
    (r"the form lists no cases", "no_cases"),
    (r"no case table \(.*\) found", "no_case_table"),
    (r"the form does not name its 推荐单位", "no_unit"),
    (r"(?P<file>.+): no Word form it belongs to yet; it waits for its Word form.*",
     "pdf_waiting_for_word"),
    (r"(?P<file>.+): the form names no 推荐单位; taken as (?P<unit>.+) from the sender's "
     r"earlier mail", "unit_from_history"),
    (r"(?P<file>.+): the form names no 推荐单位 and the sender sent none before.*",
     "unit_unread"),
    (r"(?P<detail>an Outlook \.msg file.*)", "message_is_outlook_file"),
    (r"(?P<detail>(?:no mail header found|the message is empty|the message is nested too "
     r"deeply|a bare TNEF|the message cannot be parsed as MIME|expected the message as bytes)"
     r".*)", "message_unreadable"),
    (r"internal error while parsing: (?P<detail>.*)", "internal_error"),
    (r"could not be recorded: (?P<detail>.*)", "record_failed"),
    (r"message of (?P<size_mb>[\d.]+) MB is over the (?P<limit_mb>[\d.]+) MB limit.*?"
     r"(?:\(UID (?P<uid>\d+)\).*)?", "message_too_large"),
    (r"申报编号 (?P<ref>\S+) is not in the online export; matched by names instead",
     "ref_not_in_export"),
    (r"the form's title differs from (?P<ref>.+?)'s \((?P<title>.*)\): title (?P<score>\d+)",
     "title_differs"),
    (r"the form's applicant differs from (?P<ref>.+?)'s \((?P<applicant>.*)\): applicant "
     r"(?P<score>\d+)", "applicant_differs"),
    (r"the names point to (?P<name_ref>\S+), the 申报编号 to (?P<ref>\S+): staff decide",
     "names_point_elsewhere"),
    (r"(?P<best>\S+) \((?P<best_score>\d+)\) and (?P<rival>\S+) \((?P<rival_score>\d+)\) are "
     r"too close: staff decide", "candidates_too_close"),
    (r"best candidate (?P<ref>\S+) \((?P<score>\d+)\) is not certain enough: staff decide",
     "candidate_uncertain"),
    (r"(?P<ref>\S+) names (?P<recommender>.+) as its recommending unit online",
     "recommender_other_unit"),
    (r"(?P<ref>\S+) is already claimed by row (?P<row>\d+) of this form: staff decide",
     "ref_claimed"),
]  # fmt: skip
COMPILED = [(re.compile(pattern, re.DOTALL), code) for pattern, code in PATTERNS]
_LEGACY_WORD = re.compile(r"legacy Word/WPS|LibreOffice")
_PDF_NAME = re.compile(r"\.pdf$", re.IGNORECASE)
INT_PARAMS = {"count", "limit", "pages", "scanned", "page", "row", "size", "uid"}


def _match(text: str) -> dict[str, Any] | None:
    for pattern, code in COMPILED:
        found = pattern.fullmatch(text)
        if found is not None:
            params: dict[str, Any] = {
                name: int(value) if name in INT_PARAMS else value
                for name, value in found.groupdict().items()
                if value is not None and name != "q"
            }
            return {"code": code, "params": params}
    return None


def _read_failure(file: str, detail: str, *, pdf: bool) -> dict[str, Any]:
    """A reader's refusal ("name: why; ask ..."): which reader it was decides the code."""
    if _LEGACY_WORD.search(detail):
        code = "word_legacy_unconverted"
    else:
        code = "pdf_unreadable" if pdf else "word_unreadable"
    return {"code": code, "params": {"file": file, "detail": detail}}


def problem_from_text(text: str, *, attachment_kind: str | None = None) -> dict[str, Any]:
    """The `{code, params}` an English problem sentence stored before 0003 stands for.

    Message problems that came from an attachment carry its file name as a prefix
    ("推荐表.docx: the form lists no cases"); it becomes the `file` parameter.
    """
    if isinstance(text, dict):
        return text  # already migrated
    text = str(text)
    direct = _match(text)
    if direct is not None:
        return direct
    file, separator, rest = text.partition(": ")
    if separator and file:
        inner = _match(rest)
        if inner is not None:
            inner["params"].setdefault("file", file)
            return inner
        inner_file, inner_separator, _ = rest.partition(": ")
        if inner_separator and inner_file == file:
            # an attachment's ParseError, prefixed once more with its name by the message
            rest = rest[len(inner_file) + 2 :]
        pdf = (
            attachment_kind == "form_pdf"
            if attachment_kind is not None
            else bool(_PDF_NAME.search(file))
        )
        if attachment_kind is not None or "ask the sender" in rest or "not a" in rest:
            return _read_failure(file, rest, pdf=pdf)
    return {"code": "unclassified", "params": {"detail": text}}


def _convert(table: str, column: str, *, kinds: bool = False, back: bool = False) -> None:
    columns = [sa.column("id", sa.Integer), sa.column(column, sa.JSON)]
    if kinds:
        columns.append(sa.column("kind", sa.String))
    rows = sa.table(table, *columns)
    connection = op.get_bind()
    for row in connection.execute(sa.select(*rows.c)).all():
        stored = row[1] or []
        if not stored:
            continue
        if back:
            converted: list[Any] = [
                item.get("params", {}).get("detail", item.get("code"))
                if isinstance(item, dict)
                else item
                for item in stored
            ]
        else:
            kind = row[2] if kinds else None
            converted = [problem_from_text(item, attachment_kind=kind) for item in stored]
        if converted != stored:
            connection.execute(rows.update().where(rows.c.id == row[0]).values({column: converted}))


def upgrade() -> None:
    _convert("message", "problems")
    _convert("attachment", "problems", kinds=True)
    _convert("case_row", "warnings")


def downgrade() -> None:
    _convert("message", "problems", back=True)
    _convert("attachment", "problems", kinds=True, back=True)
    _convert("case_row", "warnings", back=True)
