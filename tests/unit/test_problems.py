"""The problem catalogue: every code has its texts, in the right language, for its readers."""

from __future__ import annotations

import ast
import string
from pathlib import Path

import pytest

from parsers.model import Problem
from parsers.problems import CATALOGUE, render
from tests.support.language import english_in

ROOT = Path(__file__).resolve().parents[2]
CONTRACT_CODES = {
    "headers_damaged": set(),
    "multipart_without_boundary": set(),
    "unknown_charset": {"charset"},
    "date_out_of_range": {"header", "value"},
    "attachment_mentioned_missing": set(),
    "question_needs_reply": set(),
    "awaiting_word": {"unit"},
    "transient_failure": {"what"},
    "mail_unconfirmed": set(),
    "pdf_mismatch": {"missing", "extra"},
}


def fields_of(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


@pytest.mark.parametrize("code", sorted(CATALOGUE))
def test_every_code_has_staff_and_log_text_and_a_sender_text_when_it_concerns_the_sender(code):
    spec = CATALOGUE[code]
    assert spec.staff and spec.log
    assert ("sender" in spec.audience) == (spec.sender is not None)
    for template in (spec.staff, spec.log, spec.sender or ""):
        assert fields_of(template) <= set(spec.params), (code, template)


@pytest.mark.parametrize("code", sorted(CATALOGUE))
def test_staff_and_sender_texts_are_chinese_and_the_log_text_is_english(code):
    spec = CATALOGUE[code]
    params = {name: "推荐表.docx" if name == "file" else "一" for name in spec.params}
    for reader in ("staff", "sender"):
        text = render(code, params, reader)  # type: ignore[arg-type]
        if text is not None:
            assert english_in(text) == [], (code, reader, text)
            assert "请" in text or "无需处理" in text, (code, reader, "says what to do")
    if code != "unclassified":
        log = render(code, params, "log") or ""
        assert any(word.isascii() and word.isalpha() for word in log.split()), log


def test_the_catalogue_holds_the_codes_other_helpers_raise_with_their_parameters():
    for code, params in CONTRACT_CODES.items():
        assert set(CATALOGUE[code].params) == params, code


def codes_raised_in_the_source() -> set[str]:
    """Every literal first argument of `Problem(...)` in parsers/ and service/."""
    found = set()
    for folder in ("parsers", "service"):
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if (
                    isinstance(node, ast.Call)
                    and getattr(node.func, "id", None) == "Problem"
                    and node.args
                    and isinstance(node.args[0], ast.Constant)
                ):
                    found.add(node.args[0].value)
                for keyword in getattr(node, "keywords", []):
                    if keyword.arg == "code" and isinstance(keyword.value, ast.Constant):
                        found.add(keyword.value.value)
    return found


def test_every_code_raised_in_the_source_is_in_the_catalogue():
    raised = codes_raised_in_the_source()
    assert len(raised) > 40
    assert raised - set(CATALOGUE) == set()


def test_a_problem_round_trips_through_its_stored_form_and_old_strings_become_unclassified():
    problem = Problem("pdf_waiting_for_word", {"file": "广东移动-推荐表（盖章）.pdf"})
    assert Problem.from_json(problem.as_json()) == problem
    assert "Word" in problem.message and "广东移动" in problem.message
    assert problem.sender_text and "Word版推荐表尚未收到" in problem.sender_text
    assert Problem.from_json("something old").code == "unclassified"


def test_a_missing_parameter_renders_as_nothing_rather_than_failing():
    assert render("word_unreadable", {}, "staff") == CATALOGUE["word_unreadable"].staff.replace(
        "{file}", ""
    )


def test_staff_only_problems_have_no_sender_text():
    assert Problem("ref_claimed", {"ref": "A1", "row": 2}).sender_text is None
