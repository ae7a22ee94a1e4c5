"""A campaign with at least one queue item of every kind staff decide, for the decision tests.

It is the workspace's sample campaign (tests/support/workspace.py: an ambiguous row, a row
with no submission, a lone scanned PDF, late mail, a QQ large-attachment link, a PDF whose
seal was not found, a receipt refused for good) plus what that one lacks:
- a question with no attachment (`needs_reply`), its subject carrying an encoded line break
  and a header after it, to show the reply link cannot be used to slip in a header;
- a unit's form sent only as a PDF with a text layer, made from its Word form by LibreOffice
  (`missing_word`; its seal is not found either);
- a second mailbox that cannot be reached (`mailbox_unreadable`).
"""

from __future__ import annotations

import base64
import shutil
import subprocess
from pathlib import Path

from service.bootstrap import App
from service.ingest import poll
from service.mailbox import ImapMailbox
from tests.support.apps import MovableClock
from tests.support.mailmaker import Case, File, Form, MailDrop, at, form_docx, mail
from tests.support.services import free_port, missing_service
from tests.support.workspace import build_campaign

QUESTION_SENDER = "liu@ding.example"
QUESTION_SUBJECT = "关于申报材料的问题\r\nBcc: spy@evil.example"
"""The question's subject as its sender's program encoded it: a line break, then a header."""
PDF_ONLY = Form("己协会", [Case("智慧矿山安全监测", "某某矿业有限公司")], email="ji@ji.example")


def text_pdf(form: Form, workdir: Path) -> bytes:
    """The form as a PDF with a text layer, as a unit prints its Word form (LibreOffice)."""
    if shutil.which("soffice") is None:
        missing_service("LibreOffice", "apt-get install libreoffice-writer-nogui")
    source = workdir / "form.docx"
    source.write_bytes(form_docx(form))
    subprocess.run(
        [
            "soffice",
            "--headless",
            f"-env:UserInstallation=file://{workdir}/profile",
            "--convert-to",
            "pdf",
            "--outdir",
            str(workdir),
            str(source),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return (workdir / "form.pdf").read_bytes()


def with_encoded_subject(raw: bytes, subject: str) -> bytes:
    """`raw` with its Subject replaced by one RFC 2047 encoded word holding `subject` as is
    (line breaks included, which a plain header could not carry)."""
    encoded = base64.b64encode(subject.encode()).decode()
    lines = raw.split(b"\n")
    for number, line in enumerate(lines):
        if line.lower().startswith(b"subject:"):
            lines[number] = f"Subject: =?utf-8?b?{encoded}?=\r".encode()
            # drop the old header's folded continuation lines
            while number + 1 < len(lines) and lines[number + 1][:1] in (b" ", b"\t"):
                del lines[number + 1]
            break
    return b"\n".join(lines)


def build_every_kind_campaign(workdir: Path, clock: MovableClock, port: int) -> App:
    """The workspace campaign plus a question, a PDF-only form and a mailbox out of reach."""
    app = build_campaign(workdir, clock, port)
    converted = workdir / "converted"
    converted.mkdir()
    drop = MailDrop(workdir / "more")  # build_campaign's drop folder: its mail stays read
    question = mail(
        QUESTION_SENDER,
        "placeholder",
        received=at(20, 15),
        body="老师您好，请问推荐表上的申报编号可以暂时空着吗？",
    )
    drop.drop(with_encoded_subject(question, QUESTION_SUBJECT))
    drop.drop(
        mail(
            "ji@ji.example",
            "己协会推荐表（盖章版）",
            [File("己协会推荐表.pdf", text_pdf(PDF_ONLY, converted), "application/pdf")],
            received=at(20, 16),
        )
    )
    assert poll(app).ok
    unreachable = free_port()  # nothing listens there
    app.open_mailbox = lambda: ImapMailbox(
        "127.0.0.1", unreachable, username="cases", password="pw", security="plain", timeout=5.0
    )
    assert poll(app).error is not None
    app.open_mailbox = drop.mailbox
    return app
