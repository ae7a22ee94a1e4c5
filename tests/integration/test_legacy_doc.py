"""Legacy Word (.doc) forms are read through LibreOffice headless when it is installed."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from config.settings import SAMPLES
from parsers.kinds import detect_kind
from parsers.mail import parse_message
from parsers.word_form import read_word_form
from tests.support.services import missing_service

pytestmark = pytest.mark.integration

SAMPLE_DOCX_MESSAGE = SAMPLES / "mailbox" / "003.eml"


def _sample_docx() -> bytes:
    parsed = parse_message(SAMPLE_DOCX_MESSAGE.read_bytes())
    return next(item.data for item in parsed.attachments if item.filename.endswith(".docx"))


def _as_doc(docx: bytes, workdir: Path) -> bytes:
    if shutil.which("soffice") is None:
        missing_service("LibreOffice", "apt-get install libreoffice-writer-nogui")
    source = workdir / "推荐表.docx"
    source.write_bytes(docx)
    subprocess.run(
        [
            "soffice",
            "--headless",
            f"-env:UserInstallation=file://{workdir}/profile",
            "--convert-to",
            "doc",
            "--outdir",
            str(workdir),
            str(source),
        ],
        check=True,
        capture_output=True,
        timeout=180,
    )
    return (workdir / "推荐表.doc").read_bytes()


def test_a_doc_form_reads_like_its_docx(tmp_path: Path):
    doc = _as_doc(_sample_docx(), tmp_path)
    assert doc.startswith(bytes.fromhex("d0cf11e0a1b11ae1"))
    assert detect_kind(doc, "推荐表.doc") == "form_word"
    form = read_word_form(doc, "推荐表.doc")
    original = read_word_form(_sample_docx(), "推荐表.docx")
    assert form.format == "doc"
    assert form.unit == original.unit == "上海市通信行业协会"
    assert [(case.row, case.title, case.applicant) for case in form.cases] == [
        (case.row, case.title, case.applicant) for case in original.cases
    ]
    assert form.contact == original.contact
