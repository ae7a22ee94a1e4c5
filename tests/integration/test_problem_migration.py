"""Migration 0003: the English problem sentences stored until now become catalogue codes."""

from __future__ import annotations

import importlib.util
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from parsers.model import Problem
from parsers.problems import CATALOGUE
from service.db import create_db_engine
from tests.support.database import upgrade_schema

pytestmark = pytest.mark.integration

MIGRATION = (
    Path(__file__).resolve().parents[2] / "service/migrations/versions/0003_problem_codes.py"
)

# Every kind of sentence the code before 0003 stored, as it wrote them, and the code it is.
STORED_BEFORE: list[tuple[str, str, dict[str, object]]] = [
    ("材料.zip: the zip archive cannot be read (File is not a zip file); it is kept as one "
     "file. Ask the sender to send the files again.", "zip_unreadable", {"file": "材料.zip"}),
    ("材料.zip: the archive lists 5000 entries, more than the 1000 allowed; only the first "
     "1000 were looked at.", "zip_too_many_entries", {"count": 5000, "limit": 1000}),
    ("a.zip: the archive b.zip is nested more than 3 archives deep; it was kept unopened.",
     "zip_too_deep", {"inner": "b.zip"}),
    ("材料.zip: entry '推荐表.docx' is password-protected and was not extracted. Ask the "
     "sender for an archive without a password.", "zip_encrypted",
     {"archive": "材料.zip", "file": "推荐表.docx"}),
    ("材料.zip: entry 'x.pdf' inflates to more than its declared 100 bytes; it was not "
     "extracted.", "zip_size_mismatch", {"size": 100}),
    ("材料.zip: entry 'x.pdf' cannot be extracted (Bad CRC-32). Ask the sender to send it "
     "again.", "zip_entry_unreadable", {"file": "x.pdf"}),
    ("bomb.zip: entry 'big.bin' would inflate to 300.0 MiB, past the 256 MiB allowed per "
     "message; it and the rest of the archive were not extracted. Ask the sender to send the "
     "files themselves.", "zip_bomb", {"archive": "bomb.zip", "file": "big.bin"}),
    ("bomb.zip: entry 'big.bin' inflates 2000 times its compressed size, above the 100x "
     "allowed; it was not extracted.", "zip_bomb", {"file": "big.bin"}),
    ("winmail.dat: the Outlook TNEF attachment cannot be read (bad signature); it is kept as "
     "one file. Ask the sender to switch Outlook to HTML or plain text.", "tnef_unreadable",
     {"file": "winmail.dat"}),
    ("winmail.dat: more than 100 files; the rest were skipped.", "tnef_too_many_files",
     {"limit": 100}),
    ("winmail.dat: no file or text was found in this Outlook TNEF attachment; it is kept as "
     "one file. Ask the sender to resend with Outlook set to HTML.", "tnef_empty", {}),
    ("The Subject 'a\\nb' held line breaks or control characters; they were replaced by "
     "spaces and it is safe to use in a reply.", "control_characters", {"header": "Subject"}),
    ("The To header is too convoluted to read fully; only the bare addresses in it were "
     "kept.", "unreadable_addresses", {"header": "To"}),
    ("The Date header 'Mon, 99 Foo' cannot be read; arrival time does not depend on it.",
     "unreadable_date", {"value": "Mon, 99 Foo"}),
    ("The message has more than 500 MIME parts; the rest were not read. Ask the sender to "
     "send fewer files per message.", "too_many_parts", {"limit": 500}),
    ("The message nests MIME parts more than 20 levels deep; the deeper parts were not read.",
     "too_deep", {"limit": 20}),
    ("A text/plain body declares the unknown charset 'x-bogus'; it was read as UTF-8 or "
     "GB18030 and some characters may be wrong.", "unknown_charset", {"charset": "x-bogus"}),
    ("盖章.pdf: the PDF is irregular and was repaired: incorrect startxref",
     "pdf_irregular", {"file": "盖章.pdf"}),
    ("盖章.pdf: has 80 pages; only the first 50 were read.", "pdf_too_many_pages",
     {"pages": 80}),
    ("盖章.pdf: reading stopped at page 3: over the 20 s budget.", "pdf_time_budget",
     {"page": 3}),
    ("Reading the PDF took longer than 20 s; the rest was skipped.", "pdf_time_budget", {}),
    ("盖章.pdf: 2 of 3 pages are images without text.", "pdf_partly_scanned",
     {"scanned": 2, "pages": 3}),
    ("盖章.pdf: protected by a password; ask the sender for an unprotected copy.",
     "pdf_encrypted", {"file": "盖章.pdf"}),
    ("盖章.pdf: encrypted and cannot be decrypted here: AES needs cryptography.",
     "pdf_encrypted", {"file": "盖章.pdf"}),
    ("Page 2: text not read (too big).", "pdf_content_too_big", {"page": 2}),
    ("Page 2: an image: cannot identify image file", "pdf_image_undecodable", {"page": 2}),
    ("Page 4: unexpected EOF", "pdf_text_unreadable", {"page": 4}),
    ("推荐表.docx: case row 3 names no case title", "case_without_title",
     {"file": "推荐表.docx", "row": 3}),
    ("推荐表.docx: the form lists no cases", "no_cases", {"file": "推荐表.docx"}),
    ("推荐表.docx: no case table (序号 / 案例名称 / 申报单位) found", "no_case_table", {}),
    ("推荐表.docx: the form does not name its 推荐单位", "no_unit", {}),
    ("广东移动-推荐表（盖章）.pdf: no Word form it belongs to yet; it waits for its Word form "
     "(or staff place it with `intake pair pdf`)", "pdf_waiting_for_word",
     {"file": "广东移动-推荐表（盖章）.pdf"}),
    ("v2.docx: the form names no 推荐单位; taken as 河北联通 from the sender's earlier mail",
     "unit_from_history", {"unit": "河北联通"}),
    ("v2.docx: the form names no 推荐单位 and the sender sent none before; filed under the "
     "sender until a form names it", "unit_unread", {"file": "v2.docx"}),
    ("an Outlook .msg file, not an RFC 822 message: save it as .eml",
     "message_is_outlook_file", {}),
    ("no mail header found: this is not an RFC 822 message", "message_unreadable", {}),
    ("internal error while parsing: KeyError('x')", "internal_error", {}),
    ("could not be recorded: database is locked", "record_failed", {}),
    ("message of 60.2 MB is over the 50.0 MB limit (mailbox.max_message_size): not "
     "downloaded; open it in the mailbox (UID 7) and handle it by hand", "message_too_large",
     {"size_mb": "60.2", "uid": 7}),
    ("推荐表.docx: 推荐表.docx: not a Word document (not a readable zip package: File is not "
     "a zip file); ask the sender for a .docx saved from Word or WPS", "word_unreadable",
     {"file": "推荐表.docx"}),
    ("盖章.pdf: 盖章.pdf: not a PDF (no %PDF header); ask the sender for the PDF file itself.",
     "pdf_unreadable", {"file": "盖章.pdf"}),
    ("旧.doc: 旧.doc: a legacy Word/WPS document; reading it needs LibreOffice (apt install "
     "libreoffice-writer-nogui) on this host, or ask the sender for the form saved as .docx",
     "word_legacy_unconverted", {"file": "旧.doc"}),
]  # fmt: skip
WARNINGS_BEFORE: list[tuple[str, str]] = [
    ("申报编号 KJCX2025-9999 is not in the online export; matched by names instead",
     "ref_not_in_export"),
    ("the form's title differs from A1's (智慧港口): title 40", "title_differs"),
    ("the form's applicant differs from A1's (某公司): applicant 30", "applicant_differs"),
    ("the names point to A2, the 申报编号 to A1: staff decide", "names_point_elsewhere"),
    ("A1 (81) and A2 (78) are too close: staff decide", "candidates_too_close"),
    ("best candidate A1 (61) is not certain enough: staff decide", "candidate_uncertain"),
    ("A1 names 江苏移动 as its recommending unit online", "recommender_other_unit"),
    ("A1 is already claimed by row 2 of this form: staff decide", "ref_claimed"),
]  # fmt: skip


def migration():
    spec = importlib.util.spec_from_file_location("migration_0003", MIGRATION)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(("text", "code", "params"), STORED_BEFORE)
def test_each_stored_sentence_maps_to_its_code_and_parameters(text, code, params):
    mapped = migration().problem_from_text(text)
    assert mapped["code"] == code
    assert params.items() <= mapped["params"].items()
    assert set(mapped["params"]) <= set(CATALOGUE[code].params) | {"part", "uid", "page"}


@pytest.mark.parametrize(("text", "code"), WARNINGS_BEFORE)
def test_each_stored_matching_warning_maps_to_its_code(text, code):
    assert migration().problem_from_text(text)["code"] == code


def test_an_attachments_own_read_failure_takes_its_code_from_the_attachment_kind():
    module = migration()
    text = (
        "x.bin: damaged or unreadable PDF (PdfReadError: EOF); ask the sender to export it again."
    )
    assert module.problem_from_text(text, attachment_kind="form_pdf")["code"] == "pdf_unreadable"


def test_a_sentence_no_pattern_knows_is_kept_whole():
    mapped = migration().problem_from_text("something nobody wrote")
    assert mapped == {"code": "unclassified", "params": {"detail": "something nobody wrote"}}


def test_upgrading_a_database_with_old_problem_sentences_stores_codes(db_url):
    from alembic import command

    from service.db import alembic_config

    engine = create_db_engine(db_url)
    command.upgrade(alembic_config(engine), "0002")
    now = datetime.now(UTC).replace(tzinfo=None)
    metadata = sa.MetaData()
    message = sa.Table("message", metadata, autoload_with=engine)
    attachment = sa.Table("attachment", metadata, autoload_with=engine)
    recommendation = sa.Table("recommendation", metadata, autoload_with=engine)
    case_row = sa.Table("case_row", metadata, autoload_with=engine)
    with engine.begin() as connection:
        message_pk = connection.execute(
            message.insert().values(
                account="a",
                folder="INBOX",
                uidvalidity=1,
                uid=1,
                sha256="0" * 64,
                size=1,
                received_at=now,
                archived_at=now,
                downloaded=True,
                status="needs_attention",
                sender="",
                sender_name="",
                reply_to=[],
                subject="",
                references=[],
                no_reply=False,
                late=False,
                details={},
                after_done=False,
                problems=[text for text, _, _ in STORED_BEFORE],
            )
        ).inserted_primary_key[0]
        connection.execute(
            attachment.insert().values(
                message_pk=message_pk,
                position=0,
                filename="盖章.pdf",
                safe_name="盖章.pdf",
                content_type="application/pdf",
                sha256="1" * 64,
                size=1,
                kind="form_pdf",
                pdf_text="",
                placed=False,
                problems=["盖章.pdf: not a PDF (no %PDF header); ask the sender for the PDF."],
            )
        )
        recommendation_id = connection.execute(
            recommendation.insert().values(
                unit="河北联通",
                unit_key="河北联通",
                version=1,
                current=True,
                sender="",
                pdf_evidence=[],
                complete=False,
                late=False,
                created_at=now,
            )
        ).inserted_primary_key[0]
        connection.execute(
            case_row.insert().values(
                recommendation_id=recommendation_id,
                row=1,
                title="t",
                applicant="a",
                match="ambiguous",
                score=0.0,
                candidates=[],
                evidence=[],
                warnings=[text for text, _ in WARNINGS_BEFORE],
            )
        )
    upgrade_schema(engine)
    with engine.connect() as connection:
        problems = connection.execute(sa.select(message.c.problems)).scalar_one()
        (attachment_problem,) = connection.execute(sa.select(attachment.c.problems)).scalar_one()
        warnings = connection.execute(sa.select(case_row.c.warnings)).scalar_one()
    assert [item["code"] for item in problems] == [code for _, code, _ in STORED_BEFORE]
    assert attachment_problem["code"] == "pdf_unreadable"
    assert [item["code"] for item in warnings] == [code for _, code in WARNINGS_BEFORE]
    assert all(Problem.from_json(item).staff_text for item in [*problems, *warnings])
    engine.dispose()
