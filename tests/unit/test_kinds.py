"""Telling attachment kinds apart by content: forms in Word, sealed forms in PDF, the rest."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import docx
import pytest

from parsers.kinds import detect_kind
from parsers.word_form import OLE2_MAGIC

SAMPLES = Path("/work/shared/samples")
PNG_HEADER = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"


def word_document(*paragraphs: str) -> bytes:
    document = docx.Document()
    for text in paragraphs:
        document.add_paragraph(text)
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def text_pdf(text: str) -> bytes:
    """A one-page PDF whose text layer says `text` (ASCII) in Helvetica."""
    stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode("ascii")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
        b"/Resources << /Font << /F1 5 0 R >> >> /Contents 4 0 R >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    output = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(output))
        output += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref_at = len(output)
    output += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    output += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    output += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref_at,
    )
    return bytes(output)


CASE_REPORT_PDF = text_pdf("Case report: a 5G smart port platform, deployed since 2021. " * 3)


@pytest.mark.parametrize(
    "path",
    [*sorted((SAMPLES / "forms").glob("*.docx")), SAMPLES / "推荐表-模板.docx"],
    ids=lambda path: path.name,
)
def test_sample_word_forms_are_form_word(path: Path) -> None:
    assert detect_kind(path.read_bytes(), path.name) == "form_word"


@pytest.mark.parametrize(
    "path", sorted((SAMPLES / "forms").glob("*.pdf")), ids=lambda path: path.name
)
def test_sample_sealed_pdfs_are_form_pdf(path: Path) -> None:
    assert detect_kind(path.read_bytes(), path.name) == "form_pdf"


def test_a_text_pdf_mentioning_the_form_is_form_pdf_whatever_its_name() -> None:
    data = (SAMPLES / "forms" / "江苏移动-推荐表（盖章）.pdf").read_bytes()

    assert detect_kind(data, "scan0001.pdf") == "form_pdf"


def test_a_scanned_pdf_is_form_pdf_even_with_a_neutral_name() -> None:
    data = (SAMPLES / "forms" / "浙江电信-推荐表（盖章）.pdf").read_bytes()

    assert detect_kind(data, "IMG_20250715.pdf") == "form_pdf"


def test_a_scanned_business_licence_is_other() -> None:
    data = (SAMPLES / "forms" / "浙江电信-推荐表（盖章）.pdf").read_bytes()

    assert detect_kind(data, "营业执照扫描件.pdf") == "other"


def test_a_case_report_pdf_with_text_is_other() -> None:
    assert detect_kind(CASE_REPORT_PDF, "案例材料.pdf") == "other"


def test_a_text_pdf_named_as_the_sealed_form_is_form_pdf() -> None:
    assert detect_kind(CASE_REPORT_PDF, "推荐表（盖章）.pdf") == "form_pdf"


def test_a_word_form_built_from_labels_is_form_word() -> None:
    data = word_document("2026信息通信行业科技创新案例推荐表", "推荐单位：某协会", "推荐意见：同意")

    assert detect_kind(data, "attachment.bin") == "form_word"


def test_an_application_document_in_word_is_other() -> None:
    data = word_document(
        "2026信息通信行业科技创新案例申报书", "案例名称：某平台", "推荐单位：某协会"
    )

    assert detect_kind(data, "推荐表.docx") == "other"


def test_a_word_letter_without_form_labels_is_other() -> None:
    assert detect_kind(word_document("各位好，附件是我们的案例材料。"), "推荐.docx") == "other"


def test_a_legacy_word_file_reading_like_a_form_is_form_word() -> None:
    text = "2026信息通信行业科技创新案例推荐表 推荐单位 案例名称 推荐意见"
    data = OLE2_MAGIC + b"\0" * 64 + "WordDocument".encode("utf-16-le") + text.encode("utf-16-le")

    assert detect_kind(data, "推荐表.doc") == "form_word"


def test_a_legacy_file_without_form_text_is_other() -> None:
    data = OLE2_MAGIC + b"\0" * 64 + "WordDocument".encode("utf-16-le") + b"\0" * 512

    assert detect_kind(data, "推荐表.doc") == "other"


def _random_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("readme.txt", "推荐表 推荐单位 案例名称")
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("data", "filename"),
    [
        (PNG_HEADER + b"\0" * 100, "推荐表.png"),
        (_random_zip(), "材料.docx"),
        ("推荐表 推荐单位 案例名称".encode(), "推荐表.docx"),
        ((SAMPLES / "submissions.xlsx").read_bytes(), "推荐表.xlsx"),
        (b"", "推荐表.pdf"),
        (b"%PDF-1.7\n garbage", "推荐表.doc"),
        (b"PK\x03\x04" + b"\xff" * 200, "附件.docx"),
    ],
    ids=["png", "random-zip", "text-named-docx", "xlsx", "empty", "broken-pdf", "broken-zip"],
)
def test_files_that_are_not_forms_are_other_and_never_raise(data: bytes, filename: str) -> None:
    assert detect_kind(data, filename) in {"other", "form_pdf"}
    if not data.startswith(b"%PDF"):
        assert detect_kind(data, filename) == "other"


@pytest.mark.parametrize(
    ("data", "filename", "kind"),
    [
        (_random_zip(), "推荐表.docx", "form_word"),
        (b"PK\x03\x04" + b"\xff" * 200, "推荐表.docx", "form_word"),
        (b"%PDF-1.7\n garbage", "推荐表（盖章）.pdf", "form_pdf"),
    ],
    ids=["zip-without-word-body", "broken-zip", "broken-pdf"],
)
def test_a_damaged_file_named_as_the_form_reaches_the_form_reader(
    data: bytes, filename: str, kind: str
) -> None:
    assert detect_kind(data, filename) == kind
