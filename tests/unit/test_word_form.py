"""Reading recommendation forms from Word: the samples, every layout variant, hostile files."""

from __future__ import annotations

import io
import json
import shutil
import zipfile
from datetime import date
from pathlib import Path

import docx
import pytest
from docx.document import Document
from docx.oxml import parse_xml
from docx.oxml.ns import nsdecls, qn
from docx.table import Table

from config.errors import ParseError
from parsers.model import CaseRow
from parsers.word_form import OLE2_MAGIC, read_word_form

SAMPLES = Path("/work/shared/samples")
TRUTH = json.loads((SAMPLES / "truth.json").read_text(encoding="utf-8"))
SAMPLE_RECOMMENDATIONS = {item["word"]["filename"]: item for item in TRUTH["recommendations"]}
CASE_HEADER = ["序号", "案例名称", "申报单位", "案例类别", "申报编号", "备注"]


def docx_bytes(document: Document) -> bytes:
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def add_table(document: Document, rows: list[list[str]]) -> Table:
    table: Table = document.add_table(rows=len(rows), cols=max(len(row) for row in rows))
    for row_cells, values in zip(table.rows, rows, strict=False):
        for cell, value in zip(row_cells.cells, values, strict=False):
            cell.text = value
    return table


def canonical_form(case_rows: list[list[str]] | None = None) -> Document:
    document = docx.Document()
    document.add_paragraph("附件3")
    document.add_paragraph("2026信息通信行业科技创新案例推荐表")
    add_table(
        document,
        [
            ["推荐单位", "中国联合网络通信有限公司河北省分公司"],
            ["联系人", "王小明", "职务", "主任", "办公电话", "0311-1234567"],
            ["手机", "13800000000", "电子邮箱", "wang@he.unicom.example"],
        ],
    )
    add_table(document, [CASE_HEADER, *(case_rows or [["1", "案例甲", "甲公司", "新技术"]])])
    document.add_paragraph("推荐意见：")
    document.add_paragraph("同意推荐。")
    document.add_paragraph("推荐单位（盖章）　　")
    document.add_paragraph("2026年7月20日　　")
    return document


@pytest.mark.parametrize("filename", sorted(SAMPLE_RECOMMENDATIONS))
def test_sample_forms_read_field_by_field_as_in_truth(filename: str) -> None:
    expected = SAMPLE_RECOMMENDATIONS[filename]
    form = read_word_form((SAMPLES / "forms" / filename).read_bytes(), filename)

    assert form.unit == expected["unit"]
    assert form.contact.name == expected["contact"]["name"]
    assert form.contact.title == expected["contact"]["title"]
    assert form.contact.phone == expected["contact"]["phone"]
    assert form.contact.mobile == expected["contact"]["mobile"]
    assert form.contact.email == expected["contact"]["email"]
    assert [
        (case.row, case.title, case.applicant, case.category, case.ref) for case in form.cases
    ] == [
        (
            case["row"],
            case["title_on_form"].strip(),
            case["applicant_on_form"].strip(),
            case["category_on_form"],
            case["ref_on_form"],
        )
        for case in expected["cases"]
    ]
    assert form.format == "docx"
    assert form.problems == []


def test_sample_forms_give_title_opinion_and_signing_date() -> None:
    filename = "江苏移动-推荐表.docx"
    form = read_word_form((SAMPLES / "forms" / filename).read_bytes(), filename)

    assert form.title == "2025信息通信行业科技创新案例推荐表"
    assert form.opinion == "同意推荐。"
    assert form.signed_on == date(2025, 7, 11)


def test_a_title_is_kept_as_written_with_its_inner_space() -> None:
    filename = "浙江电信-推荐表.docx"
    form = read_word_form((SAMPLES / "forms" / filename).read_bytes(), filename)

    assert form.title == "2025信息通信行业科技创新案例 推荐表"
    assert form.cases[1].note == "联合申报"


def test_blank_template_reads_as_a_form_with_no_cases() -> None:
    form = read_word_form((SAMPLES / "推荐表-模板.docx").read_bytes(), "推荐表-模板.docx")

    assert form.title == "2025信息通信行业科技创新案例推荐表"
    assert form.cases == []
    assert form.unit is None
    assert form.signed_on is None
    assert {problem.code for problem in form.problems} == {"no_cases", "no_unit"}


def test_unit_block_written_as_label_colon_value_paragraphs_is_read() -> None:
    document = docx.Document()
    document.add_paragraph("2026信息通信行业科技创新案例推荐表")
    document.add_paragraph("推荐单位名称：广东省通信行业协会")
    document.add_paragraph("联系人：李四　　职务：秘书长")
    document.add_paragraph("联系电话: 020-87654321    手机号码：13900000000")
    document.add_paragraph("E-mail：lisi@gdca.example")
    add_table(document, [CASE_HEADER, ["1", "案例乙", "乙公司", "新产品"]])

    form = read_word_form(docx_bytes(document), "form.docx")

    assert form.unit == "广东省通信行业协会"
    assert form.contact.name == "李四"
    assert form.contact.title == "秘书长"
    assert form.contact.phone == "020-87654321"
    assert form.contact.mobile == "13900000000"
    assert form.contact.email == "lisi@gdca.example"
    assert [case.title for case in form.cases] == ["案例乙"]


def test_labels_with_inner_spaces_and_full_width_colons_are_recognised() -> None:
    document = docx.Document()
    add_table(
        document,
        [
            ["推 荐 单 位（盖章）：", "四川省通信学会"],
            ["联 系 人：", "赵六", "职　　务：", "科长"],
            ["电　　话：", "028-1111111", "手　　机：", "13700000000"],
            ["邮　　箱：zhao@sc.example"],
        ],
    )
    add_table(document, [["序  号", "项 目 名 称", "申 报 企 业"], ["1", "案例丙", "丙公司"]])

    form = read_word_form(docx_bytes(document), "form.docx")

    assert form.unit == "四川省通信学会"
    assert form.contact.name == "赵六"
    assert form.contact.title == "科长"
    assert form.contact.phone == "028-1111111"
    assert form.contact.mobile == "13700000000"
    assert form.contact.email == "zhao@sc.example"
    assert form.cases == [CaseRow(row=1, title="案例丙", applicant="丙公司")]


def test_case_columns_are_found_by_header_in_any_order_with_extra_columns() -> None:
    document = docx.Document()
    add_table(
        document,
        [
            ["所属领域", "申报单位", "推荐排序", "案例名称", "序号", "申报编号", "案例类别"],
            ["5G网络", "丁公司", "2", "案例丁", "7", "KJCX2026-0042", "新场景"],
        ],
    )

    form = read_word_form(docx_bytes(document), "form.docx")

    assert form.cases == [
        CaseRow(
            row=7,
            title="案例丁",
            applicant="丁公司",
            category="新场景",
            ref="KJCX2026-0042",
            rank="2",
        )
    ]


def test_project_name_is_read_as_the_case_title() -> None:
    document = docx.Document()
    add_table(document, [["序号", "项目名称", "单位名称"], ["1", "项目戊", "戊公司"]])

    form = read_word_form(docx_bytes(document), "form.docx")

    assert [(case.title, case.applicant) for case in form.cases] == [("项目戊", "戊公司")]


def test_two_row_header_with_merged_cells_is_understood() -> None:
    document = docx.Document()
    table = document.add_table(rows=4, cols=4)
    table.cell(0, 0).merge(table.cell(1, 0)).text = "序号"
    table.cell(0, 1).merge(table.cell(0, 2)).text = "案例信息"
    table.cell(0, 3).merge(table.cell(1, 3)).text = "申报单位"
    table.cell(1, 1).text = "案例名称"
    table.cell(1, 2).text = "案例类别"
    for row, values in (
        (2, ["1", "案例己", "新技术", "己公司"]),
        (3, ["2", "案例庚", "", "庚公司"]),
    ):
        for column, value in enumerate(values):
            table.cell(row, column).text = value

    form = read_word_form(docx_bytes(document), "form.docx")

    assert form.cases == [
        CaseRow(row=1, title="案例己", applicant="己公司", category="新技术"),
        CaseRow(row=2, title="案例庚", applicant="庚公司"),
    ]


def test_a_case_list_continued_in_a_second_table_is_read_whole() -> None:
    document = docx.Document()
    add_table(document, [CASE_HEADER, ["1", "案例一", "一公司", "新技术", "", ""]])
    document.add_paragraph("（续表）")
    add_table(document, [["2", "案例二", "二公司", "新产品", "", ""], ["", "", "", "", "", ""]])
    document.add_paragraph("推荐意见：同意")

    form = read_word_form(docx_bytes(document), "form.docx")

    assert [(case.row, case.title) for case in form.cases] == [(1, "案例一"), (2, "案例二")]
    assert form.opinion == "同意"


def test_blank_rows_and_rows_with_only_a_number_are_skipped() -> None:
    document = canonical_form(
        [
            ["", "", "", "", "", ""],
            ["1", "案例甲", "甲公司", "新技术", "", ""],
            ["2", "", "", "", "", ""],
            ["", "案例乙", "乙公司", "新产品", "", ""],
            ["  ", " ", "", "", "", ""],
        ]
    )

    form = read_word_form(docx_bytes(document), "form.docx")

    assert [(case.row, case.title) for case in form.cases] == [(1, "案例甲"), (2, "案例乙")]


def test_number_that_is_not_an_integer_falls_back_to_position() -> None:
    document = canonical_form([["一", "案例甲", "甲公司"], ["*", "案例乙", "乙公司"]])

    form = read_word_form(docx_bytes(document), "form.docx")

    assert [case.row for case in form.cases] == [1, 2]


def test_unit_block_cases_and_opinion_in_one_table_are_told_apart() -> None:
    document = docx.Document()
    add_table(
        document,
        [
            ["推荐单位", "湖北省通信管理协会", "湖北省通信管理协会", "湖北省通信管理协会"],
            ["联系人", "钱七", "手机", "13600000000"],
            ["序号", "案例名称", "申报单位", "案例类别"],
            ["1", "案例辛", "辛公司", "新技术"],
            ["推荐意见", "同意推荐。\n推荐单位（盖章）\n2026年7月1日", "", ""],
        ],
    )

    form = read_word_form(docx_bytes(document), "form.docx")

    assert form.unit == "湖北省通信管理协会"
    assert form.contact.mobile == "13600000000"
    assert [case.title for case in form.cases] == ["案例辛"]
    assert form.opinion == "同意推荐。"
    assert form.signed_on == date(2026, 7, 1)


def test_contact_labels_in_one_row_and_values_in_the_row_below_are_paired() -> None:
    document = docx.Document()
    add_table(
        document,
        [
            ["推荐单位", "联系人", "手机", "电子邮箱"],
            ["某协会", "孙八", "13500000000", "s@x.example"],
        ],
    )

    form = read_word_form(docx_bytes(document), "form.docx")

    assert form.unit == "某协会"
    assert form.contact.name == "孙八"
    assert form.contact.email == "s@x.example"


def _put_content_control(paragraph_parent: object, text: str, *, placeholder: bool) -> None:
    showing = "<w:showingPlcHdr/>" if placeholder else ""
    sdt = parse_xml(
        f"<w:sdt {nsdecls('w')}><w:sdtPr><w:alias w:val='填写'/>{showing}</w:sdtPr>"
        f"<w:sdtContent><w:r><w:t>{text}</w:t></w:r></w:sdtContent></w:sdt>"
    )
    paragraph_parent._p.append(sdt)  # type: ignore[attr-defined]


def test_text_in_content_controls_and_legacy_form_fields_is_read() -> None:
    document = canonical_form()
    unit_table = document.tables[0]
    unit_table.cell(0, 1).text = ""
    _put_content_control(unit_table.cell(0, 1).paragraphs[0], "控件里的单位", placeholder=False)
    block_level = parse_xml(
        f"<w:sdt {nsdecls('w')}><w:sdtPr/><w:sdtContent><w:p><w:r><w:t>控件职务</w:t></w:r>"
        "</w:p></w:sdtContent></w:sdt>"
    )
    title_cell = unit_table.cell(1, 3)
    title_cell.text = ""
    title_cell._tc.append(block_level)
    phone_cell = unit_table.cell(1, 5)
    phone_cell.text = ""
    phone_cell.paragraphs[0]._p.append(
        parse_xml(
            f"<w:r {nsdecls('w')}><w:fldChar w:fldCharType='begin'><w:ffData><w:name w:val='t1'/>"
            "<w:textInput/></w:ffData></w:fldChar></w:r>"
        )
    )
    for xml in (
        "<w:r><w:instrText xml:space='preserve'> FORMTEXT </w:instrText></w:r>",
        "<w:r><w:fldChar w:fldCharType='separate'/></w:r>",
        "<w:r><w:t>0311-7654321</w:t></w:r>",
        "<w:r><w:fldChar w:fldCharType='end'/></w:r>",
    ):
        phone_cell.paragraphs[0]._p.append(parse_xml(xml.replace("<w:r>", f"<w:r {nsdecls('w')}>")))
    mobile_cell = unit_table.cell(2, 1)
    mobile_cell.text = ""
    _put_content_control(mobile_cell.paragraphs[0], "单击此处输入文字。", placeholder=True)

    form = read_word_form(docx_bytes(document), "form.docx")

    assert form.unit == "控件里的单位"
    assert form.contact.title == "控件职务"
    assert form.contact.phone == "0311-7654321"
    assert form.contact.mobile is None


def test_characters_outside_gb2312_survive_intact() -> None:
    document = canonical_form([["1", "朱镕基数字平台", "张喆与王堃科技有限公司", "新技术"]])
    document.tables[0].cell(1, 1).text = "李昇"

    form = read_word_form(docx_bytes(document), "form.docx")

    assert form.cases[0].title == "朱镕基数字平台"
    assert form.cases[0].applicant == "张喆与王堃科技有限公司"
    assert form.contact.name == "李昇"


def test_line_breaks_smuggled_into_values_never_come_out() -> None:
    document = canonical_form([["1", "案例\r\nBcc: x@evil.example", "甲公司", "新技术"]])
    email_cell = document.tables[0].cell(2, 3)
    email_cell.text = ""
    run = email_cell.paragraphs[0].add_run("placeholder")
    run._r.find(qn("w:t")).text = "wang@he.example\r\nBcc: x@evil.example\u2028"

    form = read_word_form(docx_bytes(document), "form.docx")

    for value in (form.cases[0].title, form.contact.email):
        assert value is not None
        assert "\r" not in value and "\n" not in value and "\u2028" not in value
        assert "Bcc: x@evil.example" in value


def test_a_date_in_chinese_numerals_is_the_signing_date() -> None:
    document = canonical_form()
    document.add_paragraph("二〇二六年七月二十一日")

    form = read_word_form(docx_bytes(document), "form.docx")

    assert form.signed_on == date(2026, 7, 21)


def test_an_impossible_date_is_left_out() -> None:
    document = docx.Document()
    document.add_paragraph("推荐单位（盖章）：某协会　2026年13月40日")

    form = read_word_form(docx_bytes(document), "form.docx")

    assert form.unit == "某协会"
    assert form.signed_on is None


def _replace_part(original: bytes, part: str, content: bytes) -> bytes:
    source = zipfile.ZipFile(io.BytesIO(original))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as target:
        for entry in source.infolist():
            target.writestr(
                entry.filename, content if entry.filename == part else source.read(entry)
            )
    return buffer.getvalue()


def test_a_zip_bomb_disguised_as_docx_is_refused() -> None:
    original = docx_bytes(canonical_form())
    bomb = _replace_part(original, "word/media/filler.bin", b"")
    buffer = io.BytesIO(bomb)
    with zipfile.ZipFile(buffer, "a", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("word/media/filler.bin", b"\0" * (40 * 1024 * 1024))

    with pytest.raises(ParseError, match="refused to unpack") as caught:
        read_word_form(buffer.getvalue(), "bomb.docx")

    assert caught.value.filename == "bomb.docx"


def test_a_docx_with_thousands_of_entries_is_refused() -> None:
    buffer = io.BytesIO(docx_bytes(canonical_form()))
    with zipfile.ZipFile(buffer, "a") as archive:
        for number in range(2_100):
            archive.writestr(f"extra/item{number}.xml", b"<a/>")

    with pytest.raises(ParseError, match="entries"):
        read_word_form(buffer.getvalue(), "many.docx")


@pytest.mark.parametrize(
    "doctype",
    [
        '<!DOCTYPE w:document [<!ENTITY a "lol"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]>',
        '<!DOCTYPE w:document [<!ENTITY secret SYSTEM "file:///etc/passwd">]>',
    ],
    ids=["billion-laughs", "external-entity"],
)
def test_a_document_declaring_entities_is_refused(doctype: str) -> None:
    original = docx_bytes(canonical_form())
    document_xml = zipfile.ZipFile(io.BytesIO(original)).read("word/document.xml").decode()
    declaration_end = document_xml.index("?>") + 2
    hostile = document_xml[:declaration_end] + doctype + document_xml[declaration_end:]
    hostile = hostile.replace("王小明", "&b;" if "lol" in doctype else "&secret;")

    with pytest.raises(ParseError, match="DOCTYPE or entities"):
        read_word_form(_replace_part(original, "word/document.xml", hostile.encode()), "x.docx")


@pytest.mark.parametrize(
    "data",
    [b"", b"garbage bytes, not a document", b"PK\x03\x04broken zip", b"%PDF-1.7\n"],
    ids=["empty", "text", "broken-zip", "pdf"],
)
def test_bytes_that_are_not_a_word_document_give_a_parse_error(data: bytes) -> None:
    with pytest.raises(ParseError, match="not a Word document") as caught:
        read_word_form(data, "推荐表.docx")

    assert caught.value.filename == "推荐表.docx"


def test_a_label_inside_a_longer_word_is_not_taken_for_the_unit() -> None:
    document = docx.Document()
    document.add_paragraph("推荐单位：某协会")
    document.add_paragraph("申报单位名称：另一家公司")

    form = read_word_form(docx_bytes(document), "form.docx")

    assert form.unit == "某协会"


def test_a_deeply_nested_document_gives_a_parse_error_not_a_crash() -> None:
    original = docx_bytes(canonical_form())
    document_xml = zipfile.ZipFile(io.BytesIO(original)).read("word/document.xml").decode()
    depth = 5_000
    nested = "<w:sdt><w:sdtContent>" * depth + "</w:sdtContent></w:sdt>" * depth
    hostile = document_xml.replace("<w:body>", "<w:body>" + nested, 1)

    with pytest.raises(ParseError, match="nests"):
        read_word_form(_replace_part(original, "word/document.xml", hostile.encode()), "x.docx")


def test_a_spreadsheet_renamed_docx_is_not_a_word_document() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("xl/workbook.xml", "<workbook/>")

    with pytest.raises(ParseError, match="not a Word document"):
        read_word_form(buffer.getvalue(), "推荐表.docx")


@pytest.mark.skipif(shutil.which("soffice") is not None, reason="LibreOffice is installed")
def test_a_legacy_doc_without_libreoffice_asks_for_it() -> None:
    with pytest.raises(ParseError, match="needs LibreOffice"):
        read_word_form(OLE2_MAGIC + b"\0" * 1024, "推荐表.doc")


def test_a_legacy_wps_file_is_read_through_the_converter_it_is_given() -> None:
    converted = docx_bytes(canonical_form())
    handed_over: list[tuple[bytes, str]] = []

    def convert(data: bytes, filename: str) -> bytes:
        handed_over.append((data, filename))
        return converted

    legacy = OLE2_MAGIC + b"\0" * 1024
    form = read_word_form(legacy, "推荐表.wps", convert_legacy=convert)

    assert handed_over == [(legacy, "推荐表.wps")]
    assert form.format == "wps"
    assert form.unit == "中国联合网络通信有限公司河北省分公司"
