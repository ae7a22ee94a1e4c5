"""The OCR stage's layout on hand-built text boxes: lines, table cells and form fields come
back right however the engine cut the text, and bad PDFs end in a problem, not a traceback."""

from __future__ import annotations

import io
import json
import math
from datetime import date

import pytest
from PIL import Image, ImageDraw
from pypdf import PdfWriter

from config.errors import ParseError
from parsers.model import CaseRow, Problem
from parsers.ocr import (
    LabelSpot,
    PageBoxes,
    ScanReading,
    TextBox,
    judge_seal,
    ocr_input,
    read_scan,
    render_pages,
)

WIDTH, HEIGHT = 1654, 2339  # A4 at 200 dpi
LINE = 40  # text height in pixels
CHAR = 34  # width of one Chinese character


def box(text: str, x: float, y: float, width: float | None = None) -> TextBox:
    """A text box whose top-left corner is (x, y), as wide as its characters."""
    wide = width if width is not None else sum(CHAR if ord(c) > 127 else CHAR / 2 for c in text)
    return TextBox(text, x, y, x + wide, y + LINE)


HEADER = [
    box("序号", 215, 700),
    box("案例名称", 420, 700),
    box("申报单位", 780, 700),
    box("案例类别", 1015, 700),
    box("申报编号", 1180, 700),
    box("备注", 1370, 700),
]
UNIT_BLOCK = [box("推荐单位", 190, 420), box("中国电信股份有限公司浙江分公司", 460, 420)]
SIGNATURE = [
    box("推荐意见：", 170, 1150),
    box("同意推荐。", 240, 1210),
    box("推荐单位（盖章）", 1140, 1500),
    box("2025年7月20日", 1160, 1560),
]


def row(
    number: int, top: float, titles: list[str], applicants: list[str], **more: str
) -> list[TextBox]:
    """One table row with its number at the top and each cell's lines one under another."""
    boxes = [box(str(number), 232, top)]
    for line, text in enumerate(titles):
        boxes.append(box(text, 300, top + line * (LINE + 6)))
    for line, text in enumerate(applicants):
        boxes.append(box(text, 700, top + line * (LINE + 6)))
    if "category" in more:
        boxes.append(box(more["category"], 1025, top))
    if "ref" in more:
        boxes.append(box(more["ref"], 1170, top))
    return boxes


CANONICAL_ROWS = [
    *row(
        1,
        770,
        ["基于NB-IoT的钢铁冶炼能", "耗监测与优化平台"],
        ["中国电信股份有限", "公司宁波分公司"],
        category="新技术",
        ref="KJCX2025-0011",
    ),
    *row(
        2,
        880,
        ["基于5G RedCap的低空经济", "精准定位系统（一期）", "暨示范应用"],
        ["天翼数字科技公司"],
        category="新技术",
    ),
    *row(
        3,
        1036,
        ["低功耗物联网智慧医院运维"],
        ["宁波鼎信数据科技有", "限责任公司"],
        category="新产品",
    ),
]
TRUE_TITLES = [
    "基于NB-IoT的钢铁冶炼能耗监测与优化平台",
    "基于5G RedCap的低空经济精准定位系统（一期）暨示范应用",
    "低功耗物联网智慧医院运维",
]


def page(*boxes: TextBox) -> PageBoxes:
    return PageBoxes(WIDTH, HEIGHT, tuple(boxes))


def rotated(boxes: list[TextBox], degrees: float) -> list[TextBox]:
    """The boxes as a scanner that turned the page by `degrees` would find them."""
    angle = math.radians(degrees)
    cos_a, sin_a = math.cos(angle), math.sin(angle)
    centre_x, centre_y = WIDTH / 2, HEIGHT / 2
    turned = []
    for item in boxes:
        corners = [(item.x0, item.y0), (item.x1, item.y0), (item.x1, item.y1), (item.x0, item.y1)]
        moved = [
            (
                centre_x + (x - centre_x) * cos_a - (y - centre_y) * sin_a,
                centre_y + (x - centre_x) * sin_a + (y - centre_y) * cos_a,
            )
            for x, y in corners
        ]
        xs, ys = [x for x, _ in moved], [y for _, y in moved]
        turned.append(TextBox(item.text, min(xs), min(ys), max(xs), max(ys), angle=degrees))
    return turned


def canonical_form() -> list[TextBox]:
    return [*UNIT_BLOCK, *HEADER, *CANONICAL_ROWS, *SIGNATURE]


def test_titles_wrapped_over_two_and_three_lines_come_back_whole_with_their_cells():
    reading = read_scan([page(*canonical_form())], engine="test")
    assert [case.title for case in reading.cases] == TRUE_TITLES
    assert [case.applicant for case in reading.cases] == [
        "中国电信股份有限公司宁波分公司",
        "天翼数字科技公司",
        "宁波鼎信数据科技有限责任公司",
    ]
    assert [case.row for case in reading.cases] == [1, 2, 3]
    assert reading.cases[0].category == "新技术"
    assert reading.cases[0].ref == "KJCX2025-0011"
    assert reading.reads_as_form


def test_latin_words_cut_by_a_wrap_keep_their_space_and_chinese_loses_the_engines_spaces():
    rows = row(1, 770, ["基于 5G RedCap的Smart", "City 平 台"], ["天翼(绍兴)数 字科技"])
    reading = read_scan([page(*UNIT_BLOCK, *HEADER, *rows, *SIGNATURE)])
    assert reading.cases[0].title == "基于5G RedCap的Smart City平台"
    assert reading.cases[0].applicant == "天翼(绍兴)数字科技"


def test_numbers_in_the_middle_of_their_rows_still_part_the_rows_right():
    rows = []
    for number, (top, titles) in enumerate(
        [
            (770, ["第一个案例名称很长", "要折成两行"]),
            (880, ["第二个案例", "名称也折成", "三行文字"]),
        ],
        start=1,
    ):
        middle = top + (len(titles) - 1) * (LINE + 6) / 2
        rows.append(box(str(number), 232, middle))
        rows.extend(box(text, 300, top + line * (LINE + 6)) for line, text in enumerate(titles))
        rows.append(box(f"申报单位{number}", 700, middle))
    reading = read_scan([page(*UNIT_BLOCK, *HEADER, *rows, *SIGNATURE)])
    assert [case.title for case in reading.cases] == [
        "第一个案例名称很长要折成两行",
        "第二个案例名称也折成三行文字",
    ]
    assert [case.applicant for case in reading.cases] == ["申报单位1", "申报单位2"]


@pytest.mark.parametrize("degrees", [1.5, -1.2, 0.6])
def test_a_slightly_rotated_scan_reads_the_same_as_a_straight_one(degrees):
    reading = read_scan([page(*rotated(canonical_form(), degrees))])
    assert [case.title for case in reading.cases] == TRUE_TITLES
    assert reading.unit == "中国电信股份有限公司浙江分公司"
    assert reading.signed_on == date(2025, 7, 20)


def test_the_unit_is_read_right_of_its_label_with_or_without_a_colon_or_in_the_same_box():
    for unit_boxes in (
        [box("推荐单位：", 190, 420), box("上海市通信行业协会", 420, 420)],
        [
            box("推荐单位名称", 190, 420),
            box("上海市通信行业协会", 460, 420),
            box("联系人", 900, 420),
        ],
        [box("推荐单位：上海市通信行业协会", 190, 420)],
        [box("单位名称", 190, 420), box("上海市通信行业协会", 460, 420)],
    ):
        reading = read_scan([page(*unit_boxes, *HEADER, *CANONICAL_ROWS, *SIGNATURE)])
        assert reading.unit == "上海市通信行业协会", unit_boxes


def test_the_unit_is_read_below_its_label_when_the_form_puts_values_under_labels():
    unit_boxes = [
        box("推荐单位", 190, 420),
        box("联系人", 700, 420),
        box("上海市通信行业协会", 190, 470),
    ]
    reading = read_scan([page(*unit_boxes, *HEADER, *CANONICAL_ROWS, *SIGNATURE)])
    assert reading.unit == "上海市通信行业协会"


def test_a_unit_name_wrapping_in_a_narrow_cell_is_read_whole_and_stops_at_the_next_row():
    unit_boxes = [
        box("推荐单位", 190, 420),
        box("中国铁塔股份有限公司湖北", 460, 420),
        box("省分公司", 460, 466),
        box("联系人", 190, 530),
        box("王小明", 460, 530),
    ]
    reading = read_scan([page(*unit_boxes, *HEADER, *CANONICAL_ROWS, *SIGNATURE)])
    assert reading.unit == "中国铁塔股份有限公司湖北省分公司"


def test_the_unit_written_in_the_seal_line_is_taken_when_no_other_label_names_it():
    signature = [
        box("推荐单位（盖章）：江西省通信行业协会", 900, 1500),
        box("2025年7月20日", 1160, 1560),
    ]
    reading = read_scan([page(*HEADER, *CANONICAL_ROWS, *signature)])
    assert reading.unit == "江西省通信行业协会"
    assert reading.seal_label is not None


def test_the_seal_line_alone_and_the_date_under_it_are_no_unit():
    reading = read_scan([page(*HEADER, *CANONICAL_ROWS, *SIGNATURE)])
    assert reading.unit is None
    assert not reading.reads_as_form


def test_the_signing_date_and_the_seal_label_spot_are_found():
    note = box("注：请将加盖公章的PDF版及Word版推荐表一并发送至联系人邮箱。", 165, 1650)
    reading = read_scan([page(*canonical_form(), note)])
    assert reading.signed_on == date(2025, 7, 20)
    spot = reading.seal_label
    assert spot is not None and spot.page == 1
    label = SIGNATURE[2]
    assert spot.x0 == pytest.approx(label.x0 / WIDTH)
    assert spot.y0 == pytest.approx(label.y0 / HEIGHT)
    assert spot.x1 == pytest.approx(label.x1 / WIDTH)


def test_a_date_written_in_chinese_numerals_is_read():
    signature = [box("推荐单位（盖章）", 1140, 1500), box("二〇二五年七月二十日", 1160, 1560)]
    reading = read_scan([page(*UNIT_BLOCK, *HEADER, *CANONICAL_ROWS, *signature)])
    assert reading.signed_on == date(2025, 7, 20)


def test_headers_written_over_two_lines_or_run_into_one_box_are_split_into_columns():
    stacked = [
        box("序", 225, 680),
        box("号", 225, 722),
        box("案例名称", 420, 700),
        box("申报单位", 780, 700),
        box("案例类", 1015, 680),
        box("別", 1050, 722),  # the engine's misreading of 别
        box("申报编号", 1180, 700),
    ]
    reading = read_scan([page(*UNIT_BLOCK, *stacked, *CANONICAL_ROWS, *SIGNATURE)])
    assert [case.title for case in reading.cases] == TRUE_TITLES
    assert reading.cases[0].category == "新技术"
    run_together = [
        box("序号", 215, 700),
        box("案例名称申报单位", 420, 700, width=500),
        *HEADER[3:],
    ]
    reading = read_scan([page(*UNIT_BLOCK, *run_together, *CANONICAL_ROWS, *SIGNATURE)])
    assert reading.cases[0].applicant == "中国电信股份有限公司宁波分公司"


def test_a_title_header_with_its_alias_in_brackets_is_recognised():
    header = [HEADER[0], box("案例名称（项目名称）", 380, 700), *HEADER[2:]]
    reading = read_scan([page(*UNIT_BLOCK, *header, *CANONICAL_ROWS, *SIGNATURE)])
    assert [case.title for case in reading.cases] == TRUE_TITLES


def test_blank_trailing_rows_numbered_or_not_give_no_cases_and_the_table_ends_at_the_opinion():
    blank_numbered = [box("4", 232, 1100), box("5", 232, 1146)]
    opinion = [box("推荐意见：", 170, 1250), box("同意推荐。", 240, 1300)]
    signature = [box("推荐单位（盖章）", 1140, 1500), box("2025年7月20日", 1160, 1560)]
    reading = read_scan(
        [page(*UNIT_BLOCK, *HEADER, *CANONICAL_ROWS, *blank_numbered, *opinion, *signature)]
    )
    assert [case.title for case in reading.cases] == TRUE_TITLES


def test_a_row_number_the_engine_ran_into_its_title_is_cut_off():
    rows = [
        box("1 第一个案例", 225, 770, width=300),
        box("甲公司", 700, 770),
        box("2", 232, 830),
        box("第二个案例", 300, 830),
        box("乙公司", 700, 830),
    ]
    reading = read_scan([page(*UNIT_BLOCK, *HEADER, *rows, *SIGNATURE)])
    assert [(case.row, case.title) for case in reading.cases] == [
        (1, "第一个案例"),
        (2, "第二个案例"),
    ]


def test_a_table_going_on_over_a_page_break_keeps_its_columns():
    second_page = [
        box("4", 232, 200),
        box("第四个案例名称", 300, 200),
        box("丁公司", 700, 200),
        *SIGNATURE,
    ]
    first_page = [*UNIT_BLOCK, *HEADER, *CANONICAL_ROWS]
    reading = read_scan([page(*first_page), page(*second_page)])
    assert [case.title for case in reading.cases] == [*TRUE_TITLES, "第四个案例名称"]
    assert reading.seal_label is not None and reading.seal_label.page == 2
    assert reading.pages == 2 and len(reading.page_texts) == 2


def test_a_page_with_nothing_readable_gives_an_empty_reading():
    reading = read_scan([page()], engine="test")
    assert reading.cases == [] and reading.unit is None and reading.signed_on is None
    assert reading.page_texts == [""]


def test_page_text_keeps_the_lines_in_reading_order():
    reading = read_scan([page(*canonical_form())])
    lines = reading.text.splitlines()
    assert lines[0] == "推荐单位 中国电信股份有限公司浙江分公司"
    assert lines.index("推荐单位（盖章）") < lines.index("2025年7月20日")


def test_a_reading_survives_its_json_round_trip_exactly():
    reading = ScanReading(
        engine="rapidocr-3.10.0",
        pages=2,
        page_texts=["推荐单位 甲", "2025年7月20日"],
        unit="甲单位",
        cases=[
            CaseRow(1, "标题", "申报单位", category="新技术", ref="KJCX2025-0001", note="联合申报")
        ],
        signed_on=date(2025, 7, 20),
        seal_label=LabelSpot(2, 0.1, 0.2, 0.3, 0.4),
        seal="present",
        problems=[Problem("pdf_too_many_pages", {"file": "a.pdf", "pages": 9, "limit": 3})],
    )

    stored = json.loads(json.dumps(reading.as_json(), ensure_ascii=False))
    assert ScanReading.from_json(stored) == reading
    empty = ScanReading(engine="", pages=0, page_texts=[])
    assert ScanReading.from_json(json.loads(json.dumps(empty.as_json()))) == empty


def seal_page(*, with_seal: bool) -> tuple[Image.Image, LabelSpot]:
    image = Image.new("RGB", (1240, 1754), (246, 242, 230))
    draw = ImageDraw.Draw(image)
    draw.text((850, 1100), "seal label", fill=(20, 20, 20))
    if with_seal:
        draw.ellipse((820, 980, 1100, 1260), outline=(205, 28, 36), width=8)
        draw.regular_polygon((960, 1120, 40), 5, fill=(205, 28, 36))
    return image, LabelSpot(1, 850 / 1240, 1100 / 1754, 1000 / 1240, 1130 / 1754)


def test_a_red_round_seal_near_the_label_is_judged_present_and_none_is_not():
    image, spot = seal_page(with_seal=True)
    assert judge_seal(image, spot) == "present"
    image, spot = seal_page(with_seal=False)
    assert judge_seal(image, spot) is None


def test_a_seal_far_from_the_label_does_not_count():
    image, _ = seal_page(with_seal=True)
    assert judge_seal(image, LabelSpot(1, 0.05, 0.05, 0.15, 0.07)) is None


def test_the_engine_sees_the_red_channel_so_red_ink_fades_and_black_text_stays():
    image = Image.new("RGB", (4, 1), (255, 255, 255))
    image.putpixel((1, 0), (205, 28, 36))  # seal ink
    image.putpixel((2, 0), (20, 20, 20))  # printed text
    gray = ocr_input(image)
    assert gray.mode == "L"
    assert gray.getpixel((1, 0)) >= 200 and gray.getpixel((2, 0)) <= 30


def pdf_of(image: Image.Image, resolution: float) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PDF", resolution=resolution)
    return buffer.getvalue()


def test_pages_are_rendered_up_to_the_cap_and_extra_pages_are_noted():
    images = [Image.new("RGB", (850, 1100), "white") for _ in range(4)]
    buffer = io.BytesIO()
    images[0].save(buffer, format="PDF", resolution=100, save_all=True, append_images=images[1:])
    problems: list[Problem] = []
    pages = render_pages(buffer.getvalue(), max_pages=3, dpi=100, problems=problems)
    assert len(pages) == 3 and pages[0].size == (850, 1100)
    assert [problem.code for problem in problems] == ["pdf_too_many_pages"]


def test_a_huge_page_is_rendered_smaller_with_a_note_not_out_of_memory():
    poster = pdf_of(Image.new("RGB", (1000, 1000), "white"), resolution=5)  # 5 m square
    problems: list[Problem] = []
    (rendered,) = render_pages(poster, max_pages=3, problems=problems)
    assert rendered.width * rendered.height <= 24_000_000
    assert [problem.code for problem in problems] == ["ocr_page_too_large"]
    assert "厘米" in problems[0].staff_text


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"not a pdf at all", "pdf_unreadable"),
        (b"%PDF-1.7\n1 0 obj broken", "pdf_unreadable"),
    ],
)
def test_bytes_that_are_no_pdf_raise_a_parse_error(data, code):
    with pytest.raises(ParseError) as raised:
        render_pages(data, max_pages=3)
    assert raised.value.code == code


def test_an_encrypted_or_empty_pdf_raises_a_parse_error_that_says_which():
    writer = PdfWriter()
    writer.add_blank_page(595, 842)
    writer.encrypt("secret")
    buffer = io.BytesIO()
    writer.write(buffer)
    with pytest.raises(ParseError) as raised:
        render_pages(buffer.getvalue(), max_pages=3)
    assert raised.value.code == "pdf_encrypted"
    empty = io.BytesIO()
    PdfWriter().write(empty)
    with pytest.raises(ParseError, match="no pages"):
        render_pages(empty.getvalue(), max_pages=3)


def test_a_table_without_a_row_number_header_is_read_by_its_numbers():
    header = [box("案例名称", 470, 700), *HEADER[2:]]  # 序号 not read; the title header centred
    reading = read_scan([page(*UNIT_BLOCK, *header, *CANONICAL_ROWS, *SIGNATURE)])
    assert [case.title for case in reading.cases] == TRUE_TITLES


def test_seal_text_under_the_seal_line_is_never_taken_for_the_unit():
    signature = [
        box("推荐单位（盖章）", 1140, 1500),
        box("市通信", 1180, 1545),  # a piece of the seal's rim text
        box("2025年7月20日", 1160, 1590),
    ]
    reading = read_scan([page(*HEADER, *CANONICAL_ROWS, *signature)])
    assert reading.unit is None
    assert reading.signed_on == date(2025, 7, 20)


def test_a_tight_table_with_numbers_at_row_tops_and_numbered_blank_rows_parts_rows_at_numbers():
    pitch = LINE + 6  # rows as tight as the lines inside them: only the numbers tell rows apart
    rows = [
        *row(1, 770, ["第一个案例名称", "折成两行"], ["甲公司"]),
        *row(2, 770 + 2 * pitch, ["第二个案例名称", "也折成", "三行"], ["乙公司", "分公司"]),
        *row(3, 770 + 5 * pitch, ["第三个案例"], ["丙公司"]),
        box("4", 232, 770 + 6 * pitch),
        box("5", 232, 770 + 7 * pitch),
    ]
    reading = read_scan([page(*UNIT_BLOCK, *HEADER, *rows, *SIGNATURE)])
    assert [case.title for case in reading.cases] == [
        "第一个案例名称折成两行",
        "第二个案例名称也折成三行",
        "第三个案例",
    ]
    assert [case.applicant for case in reading.cases] == ["甲公司", "乙公司分公司", "丙公司"]
