"""The labels a recommendation form uses, with every synonym people write, defined once.

Forms are read by label, not by position, so the same field may be called 电话 on one form
and 办公电话 on another, be written with inner spaces (联 系 人) or end in a full-width colon.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from typing import Final, Literal, TypeVar

UnitField = Literal["unit", "contact_name", "contact_title", "phone", "mobile", "email", "opinion"]
CaseColumn = Literal["row", "title", "applicant", "category", "ref", "rank", "note"]

UNIT_FIELD_LABELS: Final[dict[UnitField, tuple[str, ...]]] = {
    "unit": ("推荐单位", "推荐单位名称", "推荐单位(盖章)", "推荐单位(公章)", "单位名称"),
    "contact_name": ("联系人", "联系人姓名", "姓名"),
    "contact_title": ("职务", "职务/职称", "职称"),
    "phone": ("办公电话", "联系电话", "电话", "座机"),
    "mobile": ("手机", "手机号码", "手机号", "移动电话"),
    "email": ("电子邮箱", "邮箱", "电子邮件", "e-mail", "email", "邮件地址"),
    "opinion": ("推荐意见", "推荐单位意见"),
}

CASE_COLUMN_LABELS: Final[dict[CaseColumn, tuple[str, ...]]] = {
    "row": ("序号", "no.", "no"),
    "title": ("案例名称", "项目名称", "案例题目"),
    "applicant": ("申报单位", "申报企业", "单位名称", "申报单位名称", "申报主体"),
    "category": ("案例类别", "案例类型", "类别"),
    "ref": ("申报编号", "在线申报编号", "系统编号"),
    "rank": ("推荐排序", "排序", "推荐顺序"),
    "note": ("备注",),
}

FORM_TITLE_WORD: Final = "推荐表"
APPLICATION_TITLE_WORD: Final = "申报书"
SEAL_WORDS: Final = ("盖章", "公章")

_PARENTHESISED = re.compile(r"\([^)]*\)")
_TRAILING_COLONS = re.compile(r"[:：]+$")


def label_key(text: str) -> str:
    """Fold a label as written (spaces, full-width forms, trailing colon, case) to a lookup key."""
    folded = unicodedata.normalize("NFKC", text)
    squeezed = "".join(ch for ch in folded if not ch.isspace())
    return _TRAILING_COLONS.sub("", squeezed).casefold()


_Name = TypeVar("_Name", bound=str)


def _build_lookup(table: Mapping[_Name, tuple[str, ...]]) -> dict[str, _Name]:
    return {label_key(label): name for name, labels in table.items() for label in labels}


_UNIT_LOOKUP: Final = _build_lookup(UNIT_FIELD_LABELS)
_CASE_LOOKUP: Final = _build_lookup(CASE_COLUMN_LABELS)


def unit_field_for(text: str) -> UnitField | None:
    """The unit-block field whose label `text` is, if it is one."""
    return _UNIT_LOOKUP.get(label_key(text))


def case_column_for(text: str) -> CaseColumn | None:
    """The case-table column whose header `text` is; a parenthesised remark is ignored."""
    key = label_key(text)
    return _CASE_LOOKUP.get(key) or _CASE_LOOKUP.get(_PARENTHESISED.sub("", key))


def _spaced_pattern(label: str) -> str:
    """A regex for `label` that tolerates inner spaces and either width of brackets."""
    pieces = []
    for ch in label:
        if ch == "(":
            pieces.append("[(（]")
        elif ch == ")":
            pieces.append("[)）]")
        else:
            pieces.append(re.escape(ch))
    return r"[\s\u3000]*".join(pieces)


def _inline_label_regex() -> re.Pattern[str]:
    labels = sorted(
        {label for labels in UNIT_FIELD_LABELS.values() for label in labels},
        key=len,
        reverse=True,
    )
    alternatives = "|".join(_spaced_pattern(label) for label in labels)
    return re.compile(rf"(?<!\w)(?P<label>{alternatives})[\s\u3000]*[:：]", re.IGNORECASE)


INLINE_LABEL: Final = _inline_label_regex()
"""Matches `label：` or `label:` for any unit-block label, spaces inside allowed, not mid-word."""
