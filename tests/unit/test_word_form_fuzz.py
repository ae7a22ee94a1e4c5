"""Whatever bytes arrive, the form reader answers with a WordForm or a ParseError, nothing else."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from config.errors import ParseError
from parsers.kinds import detect_kind
from parsers.model import WordForm
from parsers.word_form import read_word_form

SAMPLE_DOCX = sorted(Path("/work/shared/samples/forms").glob("*.docx"))
SAMPLE_BYTES = [path.read_bytes() for path in SAMPLE_DOCX]
FUZZ_SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@st.composite
def mutated_sample(draw: st.DrawFn) -> bytes:
    """A sample .docx with some bytes overwritten, and perhaps truncated."""
    data = bytearray(draw(st.sampled_from(SAMPLE_BYTES)))
    for _ in range(draw(st.integers(min_value=1, max_value=8))):
        position = draw(st.integers(min_value=0, max_value=len(data) - 1))
        data[position] = draw(st.integers(min_value=0, max_value=255))
    keep = draw(st.integers(min_value=len(data) // 2, max_value=len(data)))
    return bytes(data[:keep])


XML_FRAGMENTS = [
    "<w:tc>",
    "</w:tc>",
    "<w:tr>",
    "</w:tr>",
    "<w:tbl>",
    "</w:tbl>",
    '<w:tcPr><w:gridSpan w:val="99999"/></w:tcPr>',
    "<w:tcPr><w:vMerge/></w:tcPr>",
    "<w:sdt><w:sdtContent><w:r><w:t>推荐单位：</w:t></w:r></w:sdtContent></w:sdt>",
    "<w:p><w:r><w:t>序号</w:t></w:r></w:p>",
    "<w:t>\u2028案例名称：</w:t>",
    "&#13;",
    "&amp;",
]


@st.composite
def sample_with_edited_xml(draw: st.DrawFn) -> bytes:
    """A sample .docx whose document.xml had pieces of WordprocessingML spliced in or cut out."""
    original = zipfile.ZipFile(io.BytesIO(draw(st.sampled_from(SAMPLE_BYTES))))
    document_xml = original.read("word/document.xml").decode("utf-8")
    for _ in range(draw(st.integers(min_value=1, max_value=6))):
        start = draw(st.integers(min_value=0, max_value=len(document_xml)))
        end = draw(st.integers(min_value=start, max_value=min(len(document_xml), start + 200)))
        document_xml = (
            document_xml[:start] + draw(st.sampled_from(XML_FRAGMENTS)) + document_xml[end:]
        )
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as rebuilt:
        for entry in original.infolist():
            content = original.read(entry)
            if entry.filename == "word/document.xml":
                content = document_xml.encode("utf-8")
            rebuilt.writestr(entry.filename, content)
    return buffer.getvalue()


def read_or_refuse(data: bytes) -> WordForm | ParseError:
    try:
        return read_word_form(data, "fuzz.docx")
    except ParseError as refused:
        return refused


@FUZZ_SETTINGS
@given(st.binary(max_size=4096))
def test_random_bytes_give_a_form_or_a_parse_error(data: bytes) -> None:
    assert isinstance(read_or_refuse(data), WordForm | ParseError)


@FUZZ_SETTINGS
@given(st.binary(max_size=2048).map(lambda tail: b"PK\x03\x04" + tail))
def test_random_zip_lookalikes_give_a_form_or_a_parse_error(data: bytes) -> None:
    assert isinstance(read_or_refuse(data), WordForm | ParseError)


@FUZZ_SETTINGS
@given(mutated_sample())
def test_mutated_sample_forms_give_a_form_or_a_parse_error(data: bytes) -> None:
    outcome = read_or_refuse(data)

    assert isinstance(outcome, WordForm | ParseError)
    if isinstance(outcome, WordForm):
        for case in outcome.cases:
            assert "\n" not in case.title and "\r" not in case.title


@FUZZ_SETTINGS
@given(sample_with_edited_xml())
def test_samples_with_edited_xml_give_a_form_or_a_parse_error(data: bytes) -> None:
    outcome = read_or_refuse(data)

    assert isinstance(outcome, WordForm | ParseError)
    if isinstance(outcome, WordForm):
        values = [outcome.unit or "", *(case.applicant for case in outcome.cases)]
        assert not any("\n" in value or "\u2028" in value for value in values)


@FUZZ_SETTINGS
@given(
    st.one_of(st.binary(max_size=4096), mutated_sample(), sample_with_edited_xml()),
    st.sampled_from(["推荐表.docx", "推荐表（盖章）.pdf", "x.bin", ""]),
)
def test_detect_kind_never_raises(data: bytes, filename: str) -> None:
    assert detect_kind(data, filename) in {"form_word", "form_pdf", "other"}
