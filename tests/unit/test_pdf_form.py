"""Reading form PDFs: the samples, PDFs built here with and without seals, encryption, damage."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image, ImageDraw
from pypdf import PdfWriter
from pypdf.generic import (
    ArrayObject,
    DecodedStreamObject,
    DictionaryObject,
    FloatObject,
    NameObject,
    NumberObject,
    TextStringObject,
)

from config.errors import ParseError
from parsers.pdf_form import read_pdf_form

FORMS = Path("/work/shared/samples/forms")
JIANGSU = FORMS / "江苏移动-推荐表（盖章）.pdf"
ZHEJIANG = FORMS / "浙江电信-推荐表（盖章）.pdf"
SHANGHAI = FORMS / "上海市通信行业协会-推荐表（盖章）.pdf"

A4_AT_100_DPI = (827, 1169)


def page_with_black_text() -> Image.Image:
    """A white A4 page with black lines of 'text' and a table frame, as a scanner makes it."""
    page = Image.new("RGB", A4_AT_100_DPI, "white")
    draw = ImageDraw.Draw(page)
    for line in range(30):
        draw.text((80, 80 + line * 30), f"Recommendation form line {line}", fill="black")
    draw.rectangle((60, 60, 760, 1000), outline="black", width=2)
    return page


def stamp(page: Image.Image, colour: str, *, centre: tuple[int, int] = (600, 900)) -> Image.Image:
    """Draw a round stamp (ring, star, a little text) of `colour` on a copy of `page`."""
    stamped = page.copy()
    draw = ImageDraw.Draw(stamped)
    x, y = centre
    radius = 90
    draw.ellipse((x - radius, y - radius, x + radius, y + radius), outline=colour, width=7)
    star = [
        (x, y - 30),
        (x + 9, y - 9),
        (x + 30, y - 9),
        (x + 13, y + 5),
        (x + 19, y + 28),
        (x, y + 14),
        (x - 19, y + 28),
        (x - 13, y + 5),
        (x - 30, y - 9),
        (x - 9, y - 9),
    ]
    draw.polygon(star, fill=colour)
    draw.text((x - 40, y + 40), "SEAL  SEAL", fill=colour)
    return stamped


def image_pdf(*pages: Image.Image) -> bytes:
    """Save images as an image-only PDF, one page each, like a scanner would."""
    buffer = io.BytesIO()
    pages[0].save(buffer, format="PDF", resolution=100, save_all=True, append_images=pages[1:])
    return buffer.getvalue()


def blank_pdf_writer() -> PdfWriter:
    writer = PdfWriter()
    writer.add_blank_page(width=595, height=842)
    return writer


def written(writer: PdfWriter) -> bytes:
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


def pdf_with_signature_field(*, with_appearance: bool) -> bytes:
    """A one-page PDF whose AcroForm holds an /FT /Sig widget, with or without appearance."""
    writer = blank_pdf_writer()
    widget = DictionaryObject(
        {
            NameObject("/Type"): NameObject("/Annot"),
            NameObject("/Subtype"): NameObject("/Widget"),
            NameObject("/FT"): NameObject("/Sig"),
            NameObject("/T"): TextStringObject("Seal1"),
            NameObject("/Rect"): ArrayObject([FloatObject(v) for v in (400, 100, 520, 220)]),
            NameObject("/F"): NumberObject(4),
        }
    )
    if with_appearance:
        appearance = DecodedStreamObject()
        appearance.set_data(b"1 0 0 RG 4 w 60 60 55 0 360 re S")
        appearance.update(
            {
                NameObject("/Type"): NameObject("/XObject"),
                NameObject("/Subtype"): NameObject("/Form"),
                NameObject("/BBox"): ArrayObject([FloatObject(v) for v in (0, 0, 120, 120)]),
            }
        )
        widget[NameObject("/AP")] = DictionaryObject(
            {NameObject("/N"): writer._add_object(appearance)}
        )
    widget_reference = writer._add_object(widget)
    writer.pages[0][NameObject("/Annots")] = ArrayObject([widget_reference])
    writer._root_object[NameObject("/AcroForm")] = DictionaryObject(
        {
            NameObject("/Fields"): ArrayObject([widget_reference]),
            NameObject("/SigFlags"): NumberObject(3),
        }
    )
    return written(writer)


def pdf_drawing(content: bytes) -> bytes:
    """A one-page PDF whose content stream is `content` (vector drawing only)."""
    writer = blank_pdf_writer()
    stream = DecodedStreamObject()
    stream.set_data(content)
    writer.pages[0][NameObject("/Contents")] = writer._add_object(stream)
    return written(writer)


def circle_path(x: float, y: float, radius: float) -> bytes:
    """Four Bézier curves approximating a circle, as PDF path operators."""
    k = 0.5523 * radius
    return (
        f"{x + radius} {y} m "
        f"{x + radius} {y + k} {x + k} {y + radius} {x} {y + radius} c "
        f"{x - k} {y + radius} {x - radius} {y + k} {x - radius} {y} c "
        f"{x - radius} {y - k} {x - k} {y - radius} {x} {y - radius} c "
        f"{x + k} {y - radius} {x + radius} {y - k} {x + radius} {y} c "
    ).encode()


@pytest.mark.parametrize("sample", [JIANGSU, ZHEJIANG, SHANGHAI], ids=lambda path: path.stem)
def test_every_sample_form_pdf_has_its_seal_found(sample: Path) -> None:
    form = read_pdf_form(sample.read_bytes(), sample.name)

    assert form.seal == "present"
    assert form.seal_evidence.endswith(".")
    assert form.problems == []


def test_jiangsu_pdf_is_read_as_text_with_its_unit_and_case_titles() -> None:
    form = read_pdf_form(JIANGSU.read_bytes(), JIANGSU.name)

    assert form.scanned is False
    assert form.pages == 1
    assert "中国移动通信集团江苏有限公司" in form.text
    assert form.unit == "中国移动通信集团江苏有限公司"
    assert form.titles == [
        "数字孪生+智慧港口环境监测系统",
        "AI大模型赋能智慧校园质量检测系统",
        "《智慧矿山时空大数据综合运营管理系统》",
        "视觉大模型赋能智慧校园应急通信保障系统",
    ]


@pytest.mark.parametrize("sample", [ZHEJIANG, SHANGHAI], ids=lambda path: path.stem)
def test_scanned_sample_pdfs_are_reported_as_scans_without_text(sample: Path) -> None:
    form = read_pdf_form(sample.read_bytes(), sample.name)

    assert form.scanned is True
    assert form.text.strip() == ""
    assert form.unit is None
    assert form.titles == []


def test_scan_without_any_seal_is_absent() -> None:
    form = read_pdf_form(image_pdf(page_with_black_text()), "unsealed.pdf")

    assert form.scanned is True
    assert form.seal == "absent"


def test_scan_with_a_blue_round_stamp_is_absent() -> None:
    form = read_pdf_form(image_pdf(stamp(page_with_black_text(), "#1f3fbf")), "blue.pdf")

    assert form.seal == "absent"


def test_seal_on_the_last_page_of_a_multi_page_scan_is_found() -> None:
    pages = [page_with_black_text() for _ in range(3)]
    pages[-1] = stamp(pages[-1], "#d8232a")

    form = read_pdf_form(image_pdf(*pages), "three-pages.pdf")

    assert form.pages == 3
    assert form.seal == "present"
    assert "page 3" in form.seal_evidence.lower()


def test_pdf_with_a_user_password_is_encrypted_with_seal_unknown() -> None:
    writer = blank_pdf_writer()
    writer.encrypt(user_password="secret", owner_password="owner", algorithm="RC4-128")

    form = read_pdf_form(written(writer), "locked.pdf")

    assert form.encrypted is True
    assert form.seal == "unknown"
    assert [problem.code for problem in form.problems] == ["pdf_encrypted"]


def test_pdf_encrypted_with_an_empty_user_password_opens() -> None:
    writer = PdfWriter(clone_from=io.BytesIO(image_pdf(stamp(page_with_black_text(), "red"))))
    writer.encrypt(user_password="", owner_password="owner", algorithm="RC4-128")

    form = read_pdf_form(written(writer), "owner-only.pdf")

    assert form.encrypted is False
    assert form.seal == "present"


def test_signature_field_with_an_appearance_counts_as_a_seal() -> None:
    form = read_pdf_form(pdf_with_signature_field(with_appearance=True), "signed.pdf")

    assert form.seal == "present"
    assert "signature field" in form.seal_evidence


def test_signature_field_without_an_appearance_is_not_a_visible_seal() -> None:
    form = read_pdf_form(pdf_with_signature_field(with_appearance=False), "invisible.pdf")

    assert form.seal == "absent"


def test_red_circle_drawn_in_vector_graphics_counts_as_a_seal() -> None:
    form = read_pdf_form(
        pdf_drawing(b"q 0.86 0.1 0.1 RG 3 w " + circle_path(450, 150, 60) + b"S Q"), "vector.pdf"
    )

    assert form.seal == "present"
    assert "vector" in form.seal_evidence


def test_black_circle_drawn_in_vector_graphics_is_no_seal() -> None:
    form = read_pdf_form(
        pdf_drawing(b"q 0 0 0 RG 3 w " + circle_path(450, 150, 60) + b"S Q"), "black-circle.pdf"
    )

    assert form.seal == "absent"


@pytest.mark.parametrize(
    "data",
    [b"", b"hello, world", b"%PDF-1.7\n" + b"\x00" * 200, JIANGSU.read_bytes()[:3000]],
    ids=["empty", "text", "header-only", "truncated"],
)
def test_garbage_or_truncated_bytes_raise_a_parse_error_naming_the_file(data: bytes) -> None:
    with pytest.raises(ParseError, match=r"broken\.pdf"):
        read_pdf_form(data, "broken.pdf")


def test_pages_beyond_the_limit_are_skipped_with_a_problem() -> None:
    pages = [page_with_black_text().resize((100, 140)) for _ in range(5)]

    form = read_pdf_form(image_pdf(*pages), "long.pdf", max_pages=2)

    assert form.pages == 5
    assert "pdf_too_many_pages" in [problem.code for problem in form.problems]


def test_exhausted_time_budget_gives_unknown_not_a_hang() -> None:
    form = read_pdf_form(
        image_pdf(stamp(page_with_black_text(), "red")), "slow.pdf", time_budget_s=0.0
    )

    assert form.seal == "unknown"
    assert "pdf_time_budget" in [problem.code for problem in form.problems]


def test_image_declaring_a_huge_size_is_not_decoded_and_seal_is_unknown() -> None:
    writer = blank_pdf_writer()
    bomb = DecodedStreamObject()
    bomb.set_data(b"\x00" * 16)
    bomb.update(
        {
            NameObject("/Type"): NameObject("/XObject"),
            NameObject("/Subtype"): NameObject("/Image"),
            NameObject("/Width"): NumberObject(100_000),
            NameObject("/Height"): NumberObject(100_000),
            NameObject("/ColorSpace"): NameObject("/DeviceRGB"),
            NameObject("/BitsPerComponent"): NumberObject(8),
        }
    )
    page = writer.pages[0]
    page[NameObject("/Resources")] = DictionaryObject(
        {NameObject("/XObject"): DictionaryObject({NameObject("/Im0"): writer._add_object(bomb)})}
    )

    form = read_pdf_form(written(writer), "bomb.pdf")

    assert form.seal == "unknown"
    assert "could not be decoded" in form.seal_evidence


def test_pdf_declaring_too_many_objects_is_refused_with_a_parse_error() -> None:
    data = written(blank_pdf_writer())
    hostile = data.replace(b"/Size ", b"/Size 99999999", 1)

    with pytest.raises(ParseError, match="objects"):
        read_pdf_form(hostile, "huge.pdf")


def test_damaged_pdf_without_a_visible_seal_is_unknown_rather_than_absent() -> None:
    data = image_pdf(page_with_black_text())
    start = data.rindex(b"startxref") + len(b"startxref\n")
    damaged = data[:start] + b"999" + data[start:]

    form = read_pdf_form(damaged, "damaged.pdf")

    assert form.seal == "unknown"
    assert "pdf_irregular" in [problem.code for problem in form.problems]


def test_jiangsu_pdf_reads_as_a_whole_form_with_its_case_rows() -> None:
    form = read_pdf_form(JIANGSU.read_bytes(), JIANGSU.name)

    assert form.reads_as_form is True
    assert [(case.row, case.applicant, case.ref) for case in form.cases] == [
        (1, "常州景行通信技术有限公司", "KJCX2025-0003"),
        (2, "中移(南通)信息技术有限公司", "KJCX2025-0002"),
        (3, "中移（苏州）信息技术", "KJCX2025-0010"),
        (4, "中国移动通信集团江苏有限公司常州分公司", "KJCX2025-0013"),
    ]
    assert [case.title for case in form.cases] == form.titles


def test_a_scan_does_not_read_as_a_form() -> None:
    form = read_pdf_form(image_pdf(stamp(page_with_black_text(), "#d8232a")), "scan.pdf")

    assert (form.reads_as_form, form.cases) == (False, [])
