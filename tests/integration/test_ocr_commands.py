"""OCR in the commands: `intake poll --once` ends with the scans it fetched read and their
receipts queued; `intake status` shows the OCR queue in Chinese; `intake run` reads scans in a
thread of its own, so other mail is answered while a scan is still being read."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session

from service.ocr_jobs import ocr_counts
from tests.support.intake_process import (
    local_config,
    run_intake,
    service_config,
    sink_summary,
    unit_receipts_at,
    wait_until,
)
from tests.support.language import english_in
from tests.support.mailmaker import Case, Form, MailDrop, at, mail, message_id_of, pdf, word
from tests.support.ocr_engines import GATE_VARIABLE
from tests.support.workspace import Workspace

pytestmark = pytest.mark.integration

ENGINES = "tests.support.ocr_engines"


def scan_and_word_mail() -> tuple[bytes, bytes]:
    scan = mail("li@scan-unit.example", "盖章扫描件", [pdf("推荐表（盖章）.pdf")], received=at(18))
    form = Form(unit="词语通信有限公司", cases=[Case("一个Word里的案例", "某申报单位")])
    other = mail(
        "wang@word-unit.example", "Word版", [word("推荐表.docx", form)], received=at(18, 11)
    )
    return scan, other


def receipts_in(register: dict[str, Any]) -> list[str]:
    return [mail["message_id"] for mail in register["outbox"] if mail["kind"] == "unit_receipt"]


def test_intake_poll_once_ends_with_the_scans_read_and_status_shows_the_queue(
    sqlite_url: str, tmp_path: Path
):
    drop = MailDrop(tmp_path / "mail")
    scan, other = scan_and_word_mail()
    scan_id, other_id = drop.drop(scan), drop.drop(other)
    config = local_config(
        tmp_path,
        sqlite_url,
        mailbox={"kind": "directory", "path": str(drop.path)},
        ocr={"enabled": True, "engine": f"{ENGINES}:form_engine"},
    )
    run_intake(config, "db", "upgrade", cwd=tmp_path, check=True)

    polled = run_intake(config, "poll", "--once", cwd=tmp_path, check=True)

    assert "scans read 1" in polled.stderr
    assert "OCR: reading 推荐表（盖章）.pdf, page 1 of 1" in polled.stderr  # plain log lines
    exported = run_intake(config, "export", "--format", "json", cwd=tmp_path, check=True)
    assert sorted(receipts_in(json.loads(exported.stdout))) == sorted([scan_id, other_id])
    status = run_intake(config, "status", cwd=tmp_path, check=True)
    assert "扫描件识别：等待识别0份，正在识别0份，已识别1份，未能识别0份" in status.stdout
    as_json = json.loads(run_intake(config, "status", "--json", cwd=tmp_path, check=True).stdout)
    assert as_json["ocr"] == {"enabled": True, "queued": 0, "running": 0, "done": 1, "failed": 0}


def test_intake_reprocess_queues_the_scans_never_read_and_reuses_those_read(
    sqlite_url: str, tmp_path: Path
):
    drop = MailDrop(tmp_path / "mail")
    first, _ = scan_and_word_mail()
    drop.drop(first)
    mailbox = {"kind": "directory", "path": str(drop.path)}
    engine = {"engine": f"{ENGINES}:form_engine"}
    before = local_config(tmp_path, sqlite_url, mailbox=mailbox, ocr={"enabled": False, **engine})
    run_intake(before, "db", "upgrade", cwd=tmp_path, check=True)
    run_intake(before, "poll", "--once", cwd=tmp_path, check=True)  # OCR off: not read
    after = local_config(tmp_path, sqlite_url, mailbox=mailbox, ocr={"enabled": True, **engine})

    reprocessed = run_intake(after, "reprocess", "--all", cwd=tmp_path, check=True)

    assert "1 scan(s) never read before are queued for OCR" in reprocessed.stderr
    polled = run_intake(after, "poll", "--once", cwd=tmp_path, check=True)
    assert "scans read 1" in polled.stderr
    again = run_intake(after, "reprocess", "--all", cwd=tmp_path, check=True)
    assert "queued for OCR" not in again.stderr  # read once, by content: reused
    status = run_intake(after, "status", "--json", cwd=tmp_path, check=True)
    assert json.loads(status.stdout)["ocr"]["done"] == 1


@pytest.fixture
def ocr_gate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The gate of `gated_engine`, closed; worker processes started from here inherit it."""
    gate = tmp_path / "gate"
    monkeypatch.setenv(GATE_VARIABLE, str(gate))
    return gate


def test_intake_run_answers_other_mail_while_a_scan_is_being_read_then_the_scan(
    dovecot: Any, smtp_sink: Any, postgres_url: str, start_service: Any, ocr_gate: Path
):
    tmp_path = ocr_gate.parent
    username, password = dovecot.user("ocr-run")
    config = service_config(
        tmp_path,
        database_url=postgres_url,
        dovecot=dovecot,
        username=username,
        password=password,
        smtp_sink=smtp_sink,
        ocr={"enabled": True, "engine": f"{ENGINES}:gated_engine"},
    )
    run_intake(config, "db", "upgrade", cwd=tmp_path, check=True)
    scan, other = scan_and_word_mail()
    dovecot.append(username, scan, internaldate=at(18))
    dovecot.append(username, other, internaldate=at(18, 11))
    service = start_service(config, cwd=tmp_path)

    wait_until(
        lambda: (
            "OCR: reading 推荐表（盖章）.pdf (try 1)" in service.log()
            and unit_receipts_at(smtp_sink)[message_id_of(other)] == 1
        ),
        timeout=180,
        what="the other mail's receipt while the scan is being read",
        evidence=lambda: sink_summary(smtp_sink) + "\n" + service.log()[-3000:],
    )
    assert unit_receipts_at(smtp_sink)[message_id_of(scan)] == 0

    ocr_gate.touch()  # the page may finish

    wait_until(
        lambda: unit_receipts_at(smtp_sink)[message_id_of(scan)] == 1,
        timeout=180,
        what="the scan's receipt after its reading",
        evidence=lambda: sink_summary(smtp_sink) + "\n" + service.log()[-3000:],
    )
    assert service.stop() == 0
    assert unit_receipts_at(smtp_sink)[message_id_of(scan)] == 1
    assert unit_receipts_at(smtp_sink)[message_id_of(other)] == 1
    assert "event=ocr_done" in service.log()


def test_the_workspace_status_page_shows_the_scans_to_read_in_chinese(
    workspace: Workspace, fresh_limits: None
):
    with workspace.client() as client:
        assert workspace.sign_in(client).status_code == 303
        page = client.get("/status").text
    with Session(workspace.app.engine) as session:
        counts = ocr_counts(session)  # the campaign is shared by the session's workspace tests
    section = page.split("<h2>扫描件识别</h2>", 1)[1].split("</section>", 1)[0]
    expected = (
        f"等待识别 {counts['queued']} 份，正在识别 {counts['running']} 份，"
        f"已识别 {counts['done']} 份，未能识别 {counts['failed']} 份"
    )
    assert expected in section, section
    assert english_in(re.sub(r"<[^>]+>", "", section)) == []
