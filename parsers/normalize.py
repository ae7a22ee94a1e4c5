"""Normalisation of names, titles and codes so that people's spellings compare equal.

Forms, subjects and the online export write the same case, applicant or recommending unit in
many ways: full-width or half-width brackets, 《》 or quotes, stray spaces (also U+3000), a
company suffix left out, a short name such as 江苏移动 for 中国移动通信集团江苏有限公司. The
functions here turn each spelling into a comparison key; none of them does I/O.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass

USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"

# Legal forms that may appear anywhere in a company name and that people often leave out.
_LEGAL_FORMS = ("股份有限公司", "有限责任公司", "有限公司", "股份公司")
# Endings dropped after the legal forms, longest first; 分公司 (a branch) is never dropped.
_TRAILING_SUFFIXES = ("集团公司", "公司", "集团", "股份")
_DASHES = str.maketrans({"—": "-", "–": "-", "‐": "-", "‑": "-", "−": "-", "―": "-"})


def normalize_text(value: str) -> str:
    """NFKC (full-width to half-width), drop spaces, punctuation and quotes, fold case.

    Letters and digits of every script survive, so Chinese text compares as written.
    """
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKD", value).casefold())
    return "".join(filter(str.isalnum, folded))


def normalize_title(value: str) -> str:
    """The comparison key of a case title: 《》, quotes, brackets and spaces do not count."""
    return normalize_text(value)


_LEADING_QUALIFIER = re.compile(r"^(?:基于|面向).{1,20}?的")
_TRAILING_QUALIFIERS = ("试点", "一期")
_TRAILING_WORDS = ("解决方案", "平台", "系统")


def title_core(key: str) -> str:
    """A title key without what units drop when they shorten a title: a leading 基于…的 or
    面向…的, a trailing （试点） / （一期）, then a trailing 平台 / 系统 / 解决方案.

    `key` is a `normalize_title` key. When stripping would leave less than four characters
    the key is returned unchanged, so that a core never matches a whole family of titles.
    """
    core = _LEADING_QUALIFIER.sub("", key, count=1)
    stripped = True
    while stripped:
        stripped = False
        for qualifier in _TRAILING_QUALIFIERS:
            if core.endswith(qualifier):
                core, stripped = core[: -len(qualifier)], True
    for word in _TRAILING_WORDS:
        if core.endswith(word):
            core = core[: -len(word)]
            break
    return core if len(core) >= 4 else key


def normalize_applicant(value: str) -> str:
    """The full comparison key of an applicant (申报单位), company suffix included."""
    return normalize_text(value)


def applicant_core(value: str) -> str:
    """The applicant key without legal forms (有限公司, 股份有限公司, 集团…): a secondary key.

    A branch (分公司) keeps its ending. When stripping would leave less than two characters
    the full key is returned, so that a core never matches everything.
    """
    key = normalize_applicant(value)
    core = key
    for legal_form in _LEGAL_FORMS:
        core = core.replace(legal_form, "")
    stripped = True
    while stripped:
        stripped = False
        for suffix in _TRAILING_SUFFIXES:
            if core.endswith(suffix) and not core.endswith("分" + suffix):
                candidate = core[: -len(suffix)]
                if len(candidate) >= 2:
                    core = candidate
                    stripped = True
                break
    return core if len(core) >= 2 else key


def normalize_ref(value: str) -> str:
    """The key of a 申报编号: NFKC, no surrounding or inner spaces, dashes unified, upper case."""
    folded = unicodedata.normalize("NFKC", value).translate(_DASHES)
    return "".join(folded.split()).upper()


def normalize_uscc(value: str) -> str:
    """Full-width to half-width, no spaces or hyphens, upper case."""
    folded = unicodedata.normalize("NFKC", value).translate(_DASHES)
    return "".join(character for character in folded if character not in " -\t\r\n").upper()


def uscc_is_valid(value: str) -> bool:
    """Whether an (already normalised) USCC has 18 characters and a correct check character.

    GB 32100-2015: weights 3^(i-1) mod 31 over the first 17 characters of the alphabet
    0-9A-Y without I, O, S, V, Z; check = alphabet[(31 - sum mod 31) mod 31].
    """
    if len(value) != 18 or any(character not in USCC_ALPHABET for character in value):
        return False
    total = sum(
        USCC_ALPHABET.index(character) * pow(3, position, 31)
        for position, character in enumerate(value[:17])
    )
    return value[17] == USCC_ALPHABET[(31 - total % 31) % 31]


# --- recommending units -------------------------------------------------------------------


@dataclass(frozen=True)
class Province:
    """A provincial-level division: its full name (江苏省) and the short name people use (江苏)."""

    full: str
    short: str


PROVINCES: tuple[Province, ...] = tuple(
    Province(full, short)
    for full, short in (
        ("北京市", "北京"),
        ("天津市", "天津"),
        ("上海市", "上海"),
        ("重庆市", "重庆"),
        ("河北省", "河北"),
        ("山西省", "山西"),
        ("辽宁省", "辽宁"),
        ("吉林省", "吉林"),
        ("黑龙江省", "黑龙江"),
        ("江苏省", "江苏"),
        ("浙江省", "浙江"),
        ("安徽省", "安徽"),
        ("福建省", "福建"),
        ("江西省", "江西"),
        ("山东省", "山东"),
        ("河南省", "河南"),
        ("湖北省", "湖北"),
        ("湖南省", "湖南"),
        ("广东省", "广东"),
        ("海南省", "海南"),
        ("四川省", "四川"),
        ("贵州省", "贵州"),
        ("云南省", "云南"),
        ("陕西省", "陕西"),
        ("甘肃省", "甘肃"),
        ("青海省", "青海"),
        ("内蒙古自治区", "内蒙古"),
        ("广西壮族自治区", "广西"),
        ("西藏自治区", "西藏"),
        ("宁夏回族自治区", "宁夏"),
        ("新疆维吾尔自治区", "新疆"),
    )
)


@dataclass(frozen=True)
class CentralGroup:
    """One of the six central groups and how its provincial companies are named."""

    brand: str  # 中国移动
    short: str  # 移动, as in 江苏移动
    markers: tuple[str, ...]  # spellings of the group inside a unit name, longest first
    full_name_pattern: str  # {full} / {short}: the province's full or short name

    def full_name(self, province: Province) -> str:
        """The registered name of this group's company in `province`."""
        return self.full_name_pattern.format(full=province.full, short=province.short)


CENTRAL_GROUPS: tuple[CentralGroup, ...] = (
    CentralGroup(
        "中国移动",
        "移动",
        ("中国移动通信集团", "中国移动通信", "中国移动", "移动通信", "移动"),
        "中国移动通信集团{short}有限公司",
    ),
    CentralGroup(
        "中国电信",
        "电信",
        ("中国电信集团", "中国电信", "电信"),
        "中国电信股份有限公司{short}分公司",
    ),
    CentralGroup(
        "中国联通",
        "联通",
        ("中国联合网络通信集团", "中国联合网络通信", "中国联通", "联通"),
        "中国联合网络通信有限公司{full}分公司",
    ),
    CentralGroup(
        "中国广电",
        "广电",
        ("中国广电", "广电网络", "广电"),
        "中国广电{short}网络股份有限公司",
    ),
    CentralGroup(
        "中国铁塔",
        "铁塔",
        ("中国铁塔", "铁塔"),
        "中国铁塔股份有限公司{full}分公司",
    ),
    CentralGroup(
        "中国邮政",
        "邮政",
        ("中国邮政集团", "中国邮政", "邮政"),
        "中国邮政集团有限公司{full}分公司",
    ),
)

# Words that carry no identity once the group and the province are known.
_UNIT_FILLERS = (
    "股份有限公司",
    "有限责任公司",
    "有限公司",
    "分公司",
    "公司",
    "集团",
    "股份",
    "网络",
)


def _short_names(group: CentralGroup, province: Province) -> tuple[str, ...]:
    """The ways people write a provincial company of a central group, e.g. 江苏移动."""
    return (
        f"{province.short}{group.short}",
        f"{province.full}{group.short}",
        f"{province.short}{group.short}公司",
        f"{province.full}{group.short}公司",
        f"{group.brand}{province.short}公司",
        f"{group.brand}{province.short}分公司",
        f"{group.brand}{province.full}分公司",
        f"{group.brand}{province.short}有限公司",
    )


def _build_unit_table() -> dict[str, str]:
    table: dict[str, str] = {}
    for group in CENTRAL_GROUPS:
        for province in PROVINCES:
            full_name = group.full_name(province)
            table[normalize_text(full_name)] = full_name
            for short_name in _short_names(group, province):
                table[normalize_text(short_name)] = full_name
    return table


CENTRAL_GROUP_UNITS: Mapping[str, str] = _build_unit_table()
"""Normalised short or full name of a central group's provincial company -> registered name."""


def _central_group_unit(key: str) -> tuple[CentralGroup, Province] | None:
    """Read a normalised unit name as (group, province) when it names nothing else."""
    groups = [group for group in CENTRAL_GROUPS if any(mark in key for mark in group.markers)]
    if len(groups) != 1:
        return None
    group = groups[0]
    residue = key
    for marker in group.markers:
        residue = residue.replace(marker, "")
    found: Province | None = None
    for province in PROVINCES:
        for spelling in (province.full, province.short):
            if spelling in residue:
                if found is not None and found != province:
                    return None
                found = province
                residue = residue.replace(spelling, "", 1)
                break
    if found is None:
        return None
    for filler in _UNIT_FILLERS:
        residue = residue.replace(filler, "")
    return (group, found) if residue == "" else None


def full_unit_name(value: str) -> str | None:
    """The registered name of a central group's provincial company named any usual way.

    `full_unit_name("江苏移动")` is 中国移动通信集团江苏有限公司; None for other units.
    """
    key = normalize_text(value)
    if key in CENTRAL_GROUP_UNITS:
        return CENTRAL_GROUP_UNITS[key]
    parsed = _central_group_unit(key)
    return parsed[0].full_name(parsed[1]) if parsed else None


def _drop_province_suffix(key: str) -> str:
    """上海市通信行业协会 -> 上海通信行业协会: the administrative suffix is often left out."""
    for province in PROVINCES:
        if key.startswith(province.full):
            return province.short + key[len(province.full) :]
    return key


def normalize_unit(value: str) -> str:
    """The comparison key of a recommending unit (推荐单位).

    A central group's provincial company maps to its registered name whichever way it is
    written (江苏移动, 中国移动江苏公司…); other names lose a leading province's 省/市 suffix.
    """
    full_name = full_unit_name(value)
    if full_name is not None:
        return normalize_text(full_name)
    return _drop_province_suffix(normalize_text(value))


def units_match(first: str | None, second: str | None) -> bool:
    """Whether two spellings name the same recommending unit (short names included)."""
    if not first or not second:
        return False
    first_key, second_key = normalize_unit(first), normalize_unit(second)
    if not first_key or not second_key:
        return False
    return first_key == second_key or applicant_core(first_key) == applicant_core(second_key)


_MIN_ALIAS_LENGTH = 4  # shorter keys (移动, 上海) would be found in unrelated text


def unit_aliases(unit: str) -> frozenset[str]:
    """Normalised spellings under which `unit` may appear in a file name, subject or text."""
    key = normalize_text(unit)
    aliases = {key, normalize_unit(unit), applicant_core(key), _drop_province_suffix(key)}
    full_name = full_unit_name(unit)
    parsed = _central_group_unit(normalize_text(full_name)) if full_name else None
    if parsed is not None:
        group, province = parsed
        aliases.add(applicant_core(group.full_name(province)))
        aliases.update(normalize_text(name) for name in _short_names(group, province))
        aliases.add(normalize_text(f"{group.brand}{province.short}"))
    return frozenset(alias for alias in aliases if len(alias) >= _MIN_ALIAS_LENGTH)


def find_unit_mention(text: str, unit: str) -> str | None:
    """The longest normalised spelling of `unit` found in `text`, or None when absent."""
    haystack = normalize_text(text)
    found = [alias for alias in unit_aliases(unit) if alias in haystack]
    return max(found, key=len) if found else None


_REPLY_PREFIX = re.compile(
    r"^\s*(?:re|fw|fwd|aw|wg|回复|答复|转发|回覆)\s*(?:\[\d+\])?\s*[:：]\s*", re.IGNORECASE
)


def strip_reply_prefixes(subject: str) -> tuple[str, bool]:
    """The subject without Re:/Fw:/回复: prefixes, and whether any was removed."""
    remaining = subject
    removed = False
    while match := _REPLY_PREFIX.match(remaining):
        remaining = remaining[match.end() :]
        removed = True
    return remaining, removed
