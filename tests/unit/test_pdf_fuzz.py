"""Whatever bytes arrive, reading a PDF gives a `PdfForm` or a `ParseError`, nothing else."""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from config.errors import ParseError
from parsers.model import PdfForm
from parsers.pdf_form import read_pdf_form

SAMPLES = sorted(Path("/work/shared/samples/forms").glob("*.pdf"))
SAMPLE_BYTES = [path.read_bytes() for path in SAMPLES]
FUZZ_SETTINGS = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


def read_or_refuse(data: bytes) -> PdfForm | ParseError:
    try:
        return read_pdf_form(data, "fuzz.pdf", time_budget_s=5.0)
    except ParseError as error:
        return error


@FUZZ_SETTINGS
@given(st.binary(max_size=4096))
def test_random_bytes_give_a_form_or_a_parse_error(data: bytes) -> None:
    assert isinstance(read_or_refuse(data), PdfForm | ParseError)


@FUZZ_SETTINGS
@given(st.binary(max_size=2048))
def test_random_bytes_after_a_pdf_header_give_a_form_or_a_parse_error(data: bytes) -> None:
    assert isinstance(read_or_refuse(b"%PDF-1.7\n" + data), PdfForm | ParseError)


@st.composite
def mutated_samples(draw: st.DrawFn) -> bytes:
    """A sample PDF with a few byte ranges overwritten, deleted or cut off."""
    data = bytearray(draw(st.sampled_from(SAMPLE_BYTES)))
    for _ in range(draw(st.integers(min_value=1, max_value=6))):
        position = draw(st.integers(min_value=0, max_value=len(data) - 1))
        action = draw(st.sampled_from(["overwrite", "delete", "truncate"]))
        if action == "overwrite":
            patch = draw(st.binary(min_size=1, max_size=64))
            data[position : position + len(patch)] = patch
        elif action == "delete":
            del data[position : position + draw(st.integers(min_value=1, max_value=256))]
        else:
            del data[max(position, 16) :]
        if not data:
            break
    return bytes(data)


@FUZZ_SETTINGS
@given(mutated_samples())
def test_mutated_sample_pdfs_give_a_form_or_a_parse_error(data: bytes) -> None:
    assert isinstance(read_or_refuse(data), PdfForm | ParseError)
