"""Everything a person reads in a whole campaign is Chinese and says what to do in words.

One campaign raises every problem code of the catalogue: the realistic day of the digest
tests, plus one message for each code that day does not raise. Every mail it queues
(receipts, applicant mail, results, the digest), every sheet of the workbook, the queue of
what needs a person and `intake status` are read with the language checker.
"""

from __future__ import annotations

import csv
import hashlib
import io
from datetime import timedelta
from pathlib import Path

import openpyxl
import pytest
from rich.console import Console
from sqlmodel import Session, col, select

from parsers.model import Problem
from parsers.problems import CATALOGUE
from service.digest import queue_digest
from service.models import Attachment, CaseRow, Message, Outbox, Recommendation
from service.outbox import queue_reminder, queue_unit_receipt
from service.results import import_results
from service.status import print_status
from service.todo import todo_items
from service.workbook import register_workbook
from tests.integration.test_digest import campaign_day
from tests.support.apps import register_of
from tests.support.language import assert_reads_chinese
from tests.support.mailmaker import at

pytestmark = pytest.mark.integration

BASE_URL = "https://intake.example.org"
SAMPLE_PARAMS = {
    "file": "推荐表.docx",
    "archive": "材料.zip",
    "inner": "内层.zip",
    "unit": "某某通信行业协会",
    "ref": "KJCX2025-0005",
    "name_ref": "KJCX2025-0006",
    "best": "KJCX2025-0005",
    "rival": "KJCX2025-0006",
    "recommender": "另一协会",
    "title": "基于5G的智慧港口",
    "applicant": "某某港务有限公司",
    "what": "发信服务器",
    "missing": "智慧港口",
    "extra": "智慧矿山",
    "header": "Subject",
    "value": "七月某日",  # what a sheet or a header held, shown to staff as written
    "charset": "x-bogus",
    "detail": "RuntimeError: something broke inside",  # English: must never reach a person
}


def stored_codes(app) -> set[str]:
    with Session(app.engine) as session:
        found = [
            *(item for row in session.exec(select(Message)) for item in row.problems),
            *(item for row in session.exec(select(Attachment)) for item in row.problems),
            *(item for row in session.exec(select(CaseRow)) for item in row.warnings),
        ]
    return {item["code"] for item in found}


def raise_the_rest(app, codes: set[str]) -> None:
    """One message per code the day did not raise, with its receipt queued as processing
    would (the catalogue's parameters filled with realistic values)."""
    with Session(app.engine, expire_on_commit=False) as session:
        for position, code in enumerate(sorted(codes)):
            params = {
                name: SAMPLE_PARAMS.get(name, str(position + 1)) for name in CATALOGUE[code].params
            }
            digest = hashlib.sha256(code.encode()).hexdigest()
            arrived = at(20, 16) + timedelta(minutes=position)
            message = Message(
                account="cases@cace.example",
                folder="INBOX",
                uidvalidity=1,
                uid=10_000 + position,
                message_id=f"<{code}@unit.example>",
                sha256=digest,
                size=100,
                received_at=arrived,
                archived_at=arrived,
                status="needs_attention",
                kind="recommendation",
                sender=f"contact{position}@unit.example",
                sender_name="李娜",
                subject="推荐材料",
                problems=[Problem(code, params).as_json()],
                processed_at=arrived,
            )
            session.add(message)
            session.flush()
            queue_unit_receipt(app, session, message, [])
        session.commit()


def results_file(path: Path) -> Path:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerows([["申报编号", "结果", "备注"], ["S001", "入选", "将收录于案例集"]])
    path.write_text(buffer.getvalue(), encoding="utf-8")
    return path


def test_a_campaign_raising_every_problem_code_shows_people_only_chinese(
    sqlite_url, tmp_path, smtp_sink
):
    app = campaign_day(sqlite_url, tmp_path, smtp_sink)
    app.settings.web.base_url = BASE_URL
    raise_the_rest(app, set(CATALOGUE) - stored_codes(app))
    import_results(app, results_file(tmp_path / "results.csv"))
    with Session(app.engine) as session:
        unit = session.exec(select(Recommendation).where(col(Recommendation.current))).first()
        assert unit is not None
        assert queue_reminder(app, session, unit) is not None
        session.commit()
    assert queue_digest(app, now=at(21, 8)) == 2

    assert stored_codes(app) >= set(CATALOGUE) - {"unclassified"}
    register = register_of(app)
    with Session(app.engine) as session:
        mails = session.exec(select(Outbox)).all()
    assert {mail.kind for mail in mails} == {
        "unit_receipt",
        "applicant_receipt",
        "result",
        "digest",
        "reminder",
    }
    for mail in mails:
        where = f"{mail.kind} to {mail.recipients}"
        assert_reads_chinese(mail.subject, f"{where}: subject")
        assert_reads_chinese(mail.text_body, f"{where}: text")
        assert_reads_chinese(mail.html_body, f"{where}: html")
        assert "【2025信息通信行业科技创新案例征集】" in mail.subject, mail.subject
        if mail.kind == "digest":
            assert "回复本邮件" not in mail.text_body + mail.html_body  # nobody is asked to reply
        else:
            assert "此致" in mail.html_body and "敬礼" in mail.html_body, where
            assert "此致" in mail.text_body and "敬礼" in mail.text_body, where
    sender_codes = [code for code, spec in CATALOGUE.items() if "sender" in spec.audience]
    receipts = "".join(mail.text_body for mail in mails if mail.kind == "unit_receipt")
    for code in sender_codes:
        text = Problem(code, {n: SAMPLE_PARAMS.get(n, "1") for n in CATALOGUE[code].params})
        if code not in ("pdf_waiting_for_word", "awaiting_word"):  # said as a missing file
            assert (text.sender_text or "")[:12] in receipts, code

    items = todo_items(register)
    assert {item.kind for item in items} >= {"needs_attention", "ambiguous_row", "late"}
    for item in items:
        assert_reads_chinese(item.summary, f"todo {item.id}")
        assert_reads_chinese(item.where, f"todo {item.id}: where")
    for message in register["messages"]:
        for problem in message["problems"]:
            assert_reads_chinese(problem["text"], f"problem {problem['code']}")

    workbook = openpyxl.load_workbook(io.BytesIO(register_workbook(register, base_url=BASE_URL)))
    assert len(workbook.worksheets) == 6
    for sheet in workbook.worksheets:
        for row in sheet.iter_rows(values_only=True):
            for value in row:
                if isinstance(value, str):
                    assert_reads_chinese(value, f"sheet {sheet.title}")
    links = [row[3] for row in workbook["待处理"].iter_rows(min_row=2, values_only=True)]
    assert links and all(str(link).startswith(BASE_URL + "/") for link in links)

    printed = io.StringIO()
    print_status(app, Console(file=printed, width=200))
    assert_reads_chinese(printed.getvalue(), "intake status")
    app.engine.dispose()
