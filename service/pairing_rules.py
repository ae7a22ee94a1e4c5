"""Word form ↔ sealed PDF: plain-data evidence that two files are the same unit's same form.

A unit sends its form twice, as Word and as a sealed PDF, in one message or in separate ones
days apart, sometimes from a colleague's address. These functions weigh the evidence (same
message, same sender, same organisation, the unit named in the PDF's file name, subject or
text, the case titles in its text, a reply, arrival order) into a score from 0 to 1 and
keep every reason, so that staff can see why a PDF was placed. No database, no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from rapidfuzz import fuzz

from parsers.normalize import (
    PROVINCES,
    find_unit_mention,
    normalize_text,
    normalize_title,
    normalize_unit,
    strip_reply_prefixes,
    units_match,
)

SAME_MESSAGE = 0.9
"""Both files came in one message: the usual case, nearly decisive on its own."""
SAME_SENDER = 0.4
SAME_ORGANISATION = 0.25
"""Different senders at one organisation's domain (public webmail never counts)."""
UNIT_IN_FILENAME = 0.3
UNIT_IN_SUBJECT = 0.2
UNIT_IN_TEXT = 0.3
UNIT_EVIDENCE_CAP = 0.4
"""File name, subject and text naming the unit say one thing, so their sum is capped."""
OTHER_UNIT_PENALTY = 0.5
"""The PDF itself names another unit."""
TITLES_IN_TEXT = 0.3
"""Scaled by the share of the form's case titles found in the PDF's text."""
REPLY = 0.2
SAME_SUBJECT = 0.1
CLOSE_ARRIVAL = 0.1
ARRIVAL_WINDOW = timedelta(days=7)
"""A PDF within this time of the Word form (before or after) counts as arriving with it."""

PUBLIC_WEBMAIL = frozenset(
    {
        "qq.com",
        "foxmail.com",
        "163.com",
        "126.com",
        "yeah.net",
        "188.com",
        "sina.com",
        "sina.cn",
        "sohu.com",
        "139.com",
        "189.cn",
        "wo.cn",
        "aliyun.com",
        "21cn.com",
        "tom.com",
        "gmail.com",
        "googlemail.com",
        "outlook.com",
        "hotmail.com",
        "live.com",
        "msn.com",
        "yahoo.com",
        "icloud.com",
        "me.com",
        "proton.me",
        "protonmail.com",
        "yandex.com",
        "mail.ru",
    }
)
"""Registrable domains of public webmail: a shared one says nothing about the organisation."""

# Second-level labels under which organisations register (example.com.cn, example.js.cn).
_CHINA_PROVINCE_LABELS = frozenset(
    {
        "bj",
        "tj",
        "he",
        "sx",
        "nm",
        "ln",
        "jl",
        "hl",
        "sh",
        "js",
        "zj",
        "ah",
        "fj",
        "jx",
        "sd",
        "ha",
        "hb",
        "hn",
        "gd",
        "gx",
        "hi",
        "cq",
        "sc",
        "gz",
        "yn",
        "xz",
        "sn",
        "gs",
        "qh",
        "nx",
        "xj",
        "tw",
        "hk",
        "mo",
    }
)
_SECOND_LEVEL = (
    frozenset({"com", "net", "org", "gov", "edu", "ac", "mil", "co"}) | _CHINA_PROVINCE_LABELS
)
# Reserved test domains (RFC 2606) stand in for real ones in samples: qq.example is webmail.
_TEST_TOP_LEVEL = frozenset({"example", "test", "invalid", "localhost"})
_WEBMAIL_NAMES = frozenset(domain.split(".")[0] for domain in PUBLIC_WEBMAIL)


@dataclass(frozen=True)
class DocumentFacts:
    """What is known about one file (a Word form or a candidate PDF) and its message."""

    message_key: str
    sender: str
    sender_domain: str
    received_at: datetime
    filename: str
    subject: str
    unit: str | None  # the Word form's 推荐单位, or the unit a PDF's text names
    pdf_text: str  # the PDF's text layer; "" for a Word form or a scan
    titles: tuple[str, ...]  # case titles read from the document


@dataclass(frozen=True)
class PairScore:
    """How strongly a PDF belongs with a Word form (0 to 1) and why."""

    score: float
    evidence: tuple[str, ...]


def organisation_domain(address_or_domain: str) -> str:
    """The registrable domain of an address or host; "" for public webmail or nothing.

    js.chinamobile.example -> chinamobile.example; mail.example.com.cn -> example.com.cn.
    """
    domain = address_or_domain.rpartition("@")[2].strip().strip("<>[]").rstrip(".").lower()
    labels = [label for label in domain.split(".") if label]
    if len(labels) < 2:
        return ""
    keep = 3 if len(labels) >= 3 and labels[-2] in _SECOND_LEVEL and len(labels[-1]) == 2 else 2
    registrable = ".".join(labels[-keep:])
    if registrable in PUBLIC_WEBMAIL:
        return ""
    if labels[-1] in _TEST_TOP_LEVEL and labels[-keep] in _WEBMAIL_NAMES:
        return ""
    return registrable


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _unit_evidence(word: DocumentFacts, pdf: DocumentFacts) -> tuple[float, list[str]]:
    if not word.unit:
        return 0.0, []
    points = 0.0
    evidence: list[str] = []
    for where, text, weight in (
        ("file name", pdf.filename, UNIT_IN_FILENAME),
        ("subject", pdf.subject, UNIT_IN_SUBJECT),
        ("PDF text", pdf.pdf_text, UNIT_IN_TEXT),
    ):
        mention = find_unit_mention(text, word.unit) if text else None
        if mention:
            points += weight
            evidence.append(f"unit named in the {where} ({mention})")
    if pdf.unit and not units_match(word.unit, pdf.unit):
        return -OTHER_UNIT_PENALTY, [f"the PDF names another unit ({pdf.unit})"]
    return min(points, UNIT_EVIDENCE_CAP), evidence


def _title_evidence(word: DocumentFacts, pdf: DocumentFacts) -> tuple[float, list[str]]:
    titles = {key for key in (normalize_title(title) for title in word.titles) if len(key) >= 4}
    if not titles or not (pdf.pdf_text or pdf.titles):
        return 0.0, []
    text = normalize_text(pdf.pdf_text)
    pdf_titles = {normalize_title(title) for title in pdf.titles}
    found = sum(1 for title in titles if title in text or title in pdf_titles)
    if not found:
        return 0.0, []
    return TITLES_IN_TEXT * found / len(titles), [
        f"{found} of {len(titles)} case titles in the PDF"
    ]


def _subject_evidence(word: DocumentFacts, pdf: DocumentFacts) -> tuple[float, list[str]]:
    word_subject, word_is_reply = strip_reply_prefixes(word.subject)
    pdf_subject, pdf_is_reply = strip_reply_prefixes(pdf.subject)
    word_key, pdf_key = normalize_text(word_subject), normalize_text(pdf_subject)
    if not word_key or word_key != pdf_key:
        return 0.0, []
    if pdf_is_reply and not word_is_reply:
        return REPLY, ["the PDF came in a reply to the Word form's message"]
    if word_is_reply and not pdf_is_reply:
        return REPLY, ["the Word form came in a reply to the PDF's message"]
    return SAME_SUBJECT, ["same subject"]


def score_pair(word: DocumentFacts, pdf: DocumentFacts) -> PairScore:
    """Weigh the evidence that `pdf` is the sealed copy of the form in `word`."""
    points = 0.0
    evidence: list[str] = []
    if word.message_key and word.message_key == pdf.message_key:
        points += SAME_MESSAGE
        evidence.append("same message")
    if word.sender and word.sender.lower() == pdf.sender.lower():
        points += SAME_SENDER
        evidence.append("same sender")
    else:
        word_domain = organisation_domain(word.sender_domain or word.sender)
        if word_domain and word_domain == organisation_domain(pdf.sender_domain or pdf.sender):
            points += SAME_ORGANISATION
            evidence.append(f"same organisation domain ({word_domain})")
    for part in (_unit_evidence, _title_evidence, _subject_evidence):
        part_points, part_evidence = part(word, pdf)
        points += part_points
        evidence.extend(part_evidence)
    gap = _aware(pdf.received_at) - _aware(word.received_at)
    if word.message_key != pdf.message_key and abs(gap) <= ARRIVAL_WINDOW:
        days = abs(gap).total_seconds() / 86400
        direction = "after" if gap >= timedelta(0) else "before"
        points += CLOSE_ARRIVAL
        evidence.append(f"arrived {days:.1f} days {direction} the Word form")
    return PairScore(score=round(min(1.0, max(0.0, points)), 3), evidence=tuple(evidence))


def best_pdf_for_word(
    word: DocumentFacts,
    pdfs: Sequence[DocumentFacts],
    *,
    accept: float = 0.6,
    margin: float = 0.15,
) -> tuple[int | None, PairScore, list[PairScore]]:
    """The index of the PDF that pairs with `word`, or None when unsure, with all scores.

    The best must reach `accept` and lead the runner-up by `margin`; a tie is left to staff.
    """
    scores = [score_pair(word, pdf) for pdf in pdfs]
    if not scores:
        return None, PairScore(0.0, ("no candidate PDF",)), scores
    ranked = sorted(range(len(scores)), key=lambda position: -scores[position].score)
    best = ranked[0]
    runner_up = scores[ranked[1]].score if len(ranked) > 1 else 0.0
    if scores[best].score >= accept and scores[best].score - runner_up >= margin:
        return best, scores[best], scores
    return None, scores[best], scores


def unit_for_pdf(pdf: DocumentFacts, units: Sequence[str]) -> str | None:
    """The one unit among `units` that a lone PDF names (file name, subject, text), else None.

    When several units are named, the one with the longest mention wins only if every other
    mention lies inside it (江苏移动常州分公司 over 江苏移动); otherwise nobody guesses.
    """
    found: list[tuple[str, str]] = []
    for unit in units:
        if any(units_match(unit, earlier) for earlier, _ in found):
            continue
        mentions = [
            mention
            for text in (pdf.filename, pdf.subject, pdf.pdf_text)
            if text and (mention := find_unit_mention(text, unit))
        ]
        if pdf.unit and units_match(pdf.unit, unit):
            mentions.append(normalize_text(pdf.unit))
        if mentions:
            found.append((unit, max(mentions, key=len)))
    if not found:
        return None
    found.sort(key=lambda item: -len(item[1]))
    longest_unit, longest_mention = found[0]
    if all(mention in longest_mention and mention != longest_mention for _, mention in found[1:]):
        return longest_unit
    return None


SCAN_UNIT_KNOWN = 90.0
"""A unit read from a scan is taken as the known unit it resembles this much (rapidfuzz,
normalised names): OCR misreads a character or two of a long name."""
SCAN_UNIT_VOUCHED = 80.0
"""The bar when the scan's sender (the address, or its organisation's domain) sent that
unit's forms before."""
SCAN_UNIT_MARGIN = 5.0
"""The known unit must resemble the read name this much more than the next one."""
SCAN_UNIT_NEW = 70.0
"""A name resembling no known unit even this much is a unit not yet known, taken as read;
between this and the bar it is a misread nobody can settle."""


@dataclass(frozen=True)
class KnownUnit:
    """A recommending unit already known (a form recorded, or named in the online export),
    and the addresses that sent its forms."""

    name: str
    senders: tuple[str, ...] = ()


@dataclass(frozen=True)
class ScanUnit:
    """The unit to pair a scan by (None: the read name cannot be trusted) and why."""

    unit: str | None
    evidence: str


def _vouched(unit: KnownUnit, sender: str) -> bool:
    """Whether `sender`, or another address of its organisation, sent this unit's forms."""
    if not sender:
        return False
    domain = organisation_domain(sender)
    return any(
        earlier.lower() == sender.lower() or bool(domain and organisation_domain(earlier) == domain)
        for earlier in unit.senders
    )


def _provinces(key: str) -> frozenset[str]:
    """The provinces a normalised unit name names (by their short names)."""
    return frozenset(province.short for province in PROVINCES if province.short in key)


def _may_be_misread_as(read_key: str, known_key: str) -> bool:
    """Whether `read_key` can be an OCR misreading of `known_key` rather than another unit:
    two names of different provinces (山西 / 上海 协会), or one holding the other whole (a
    company and its city branch), are two units however alike they look."""
    read_provinces, known_provinces = _provinces(read_key), _provinces(known_key)
    if read_provinces and known_provinces and not read_provinces & known_provinces:
        return False
    return read_key not in known_key and known_key not in read_key


def check_scan_unit(
    read: str | None,
    known: Sequence[KnownUnit],
    *,
    sender: str,
    filename: str = "",
    subject: str = "",
) -> ScanUnit:
    """Whether to trust the unit OCR read on a scanned form, and as which unit.

    A known unit (same name, or nearly: ≥ `SCAN_UNIT_KNOWN`, or ≥ `SCAN_UNIT_VOUCHED` when the
    sender sent that unit's forms before) is taken under its known name. Otherwise the read
    name stands when the file name or subject names it too, or when it resembles no known
    unit it could be a misreading of (a new unit); a near miss of a known unit is not
    trusted. A unit of another province, or a branch of a known unit, is never a misreading.
    """
    read = (read or "").strip()
    if not read:
        return ScanUnit(None, "no unit read from the scan")
    for unit in known:
        if units_match(read, unit.name):
            name = max(unit.name, read, key=len)  # the full name, however either wrote it
            return ScanUnit(name, f"the unit read from the scan is a known unit ({unit.name})")
    key = normalize_unit(read)
    scored = sorted(
        (
            (fuzz.ratio(key, known_key), unit)
            for unit in known
            if _may_be_misread_as(key, known_key := normalize_unit(unit.name))
        ),
        key=lambda pair: -pair[0],
    )
    best_score = scored[0][0] if scored else 0.0
    if scored:
        best = scored[0][1]
        runner_up = scored[1][0] if len(scored) > 1 else 0.0
        vouched = _vouched(best, sender)
        bar = SCAN_UNIT_VOUCHED if vouched else SCAN_UNIT_KNOWN
        if best_score >= bar and best_score - runner_up >= SCAN_UNIT_MARGIN:
            source = ", sent from its address or domain" if vouched else ""
            return ScanUnit(
                best.name,
                f"read on the scan as {read}, taken as the known unit {best.name} "
                f"(score {best_score:.0f}{source})",
            )
    if any(text and find_unit_mention(text, read) for text in (filename, subject)):
        return ScanUnit(read, f"the unit read from the scan ({read}) is named in the mail too")
    if best_score < SCAN_UNIT_NEW:
        return ScanUnit(read, f"the unit read from the scan ({read}) is a unit not yet known")
    return ScanUnit(
        None,
        f"read on the scan as {read}, near the known unit {scored[0][1].name} "
        f"(score {best_score:.0f}) but not near enough to tell",
    )
