"""Recommendations and their versions, and the Word ↔ sealed-PDF pairing.

A Word form creates (or supersedes) its unit's recommendation; a PDF joins the Word of
the same message, or waits, visible to staff, until the evidence places it. Staff's manual
placements win over everything automatic.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import sqlalchemy as sa
from sqlmodel import Session, col, select

from parsers.model import CaseRow as FormCaseRow
from parsers.model import PdfForm, Problem, WordForm
from parsers.normalize import normalize_unit, units_match
from service.bootstrap import App
from service.models import (
    Attachment,
    CaseRow,
    ManualDecision,
    Message,
    Recommendation,
    Submission,
)
from service.pairing_rules import (
    ARRIVAL_WINDOW,
    DocumentFacts,
    KnownUnit,
    PairScore,
    best_pdf_for_word,
    check_scan_unit,
    organisation_domain,
    score_pair,
)
from service.register import UNIT_UNREAD

PDF_ACCEPT = 0.6
PDF_MARGIN = 0.15
SENDERS_ONLY_PDF = "the only waiting PDF of the sender, who has only this form waiting"
UNIT_ON_SCAN = "the only recommendation awaiting a PDF of the unit read from the scan"
PDF_ONLY = "pdf_only"
"""`pdf_method` of a recommendation recorded from its sealed PDF alone (no Word form yet)."""


@dataclass
class FormInput:
    """A Word form read from an attachment of the message being processed."""

    attachment: Attachment
    form: WordForm


@dataclass
class PdfInput:
    """A form PDF of the message being processed (`form` None when it could not be read)."""

    attachment: Attachment
    form: PdfForm | None


@dataclass
class Placement:
    """Which recommendations a message touched, and what staff should know."""

    touched: list[Recommendation] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    needs_person: bool = False  # something only staff can settle (e.g. whose form this is)


def _facts(
    message: Message, attachment: Attachment, *, unit: str | None, titles: tuple[str, ...]
) -> DocumentFacts:
    return DocumentFacts(
        message_key=message.sha256,
        sender=message.sender,
        sender_domain=organisation_domain(message.sender.rpartition("@")[2]),
        received_at=message.received_at,
        filename=attachment.filename,
        subject=message.subject,
        unit=unit,
        pdf_text=attachment.pdf_text,
        titles=titles,
    )


def _current_for(session: Session, unit_key: str, unit: str) -> Recommendation | None:
    exact = session.exec(
        select(Recommendation).where(
            Recommendation.unit_key == unit_key, Recommendation.current == sa.true()
        )
    ).first()
    if exact is not None:
        return exact
    for candidate in session.exec(
        select(Recommendation).where(Recommendation.current == sa.true())
    ).all():
        if units_match(candidate.unit, unit):
            return candidate
    return None


def _unit_from_history(session: Session, sender: str) -> str | None:
    """The unit of the sender's latest recommendation, when a form names none."""
    if not sender:
        return None
    earlier = session.exec(
        select(Recommendation)
        .where(col(Recommendation.sender) == sender)
        .order_by(col(Recommendation.id).desc())
    ).first()
    return earlier.unit if earlier else None


def _unread_unit_of_sender(session: Session, sender: str) -> Recommendation | None:
    """The sender's current recommendation filed under the sender because no unit was read."""
    if not sender:
        return None
    return session.exec(
        select(Recommendation).where(
            col(Recommendation.current) == sa.true(),
            col(Recommendation.unit) == f"{UNIT_UNREAD}{sender}",
        )
    ).first()


def place_forms(
    app: App,
    session: Session,
    message: Message,
    forms: list[FormInput],
    pdfs: list[PdfInput],
) -> Placement:
    """Record the message's Word forms as recommendations and place its PDFs."""
    placement = Placement()
    if any(read_from_scan(pdf) for pdf in pdfs):
        known = _known_units(session, message, forms)
        for pdf in pdfs:
            if read_from_scan(pdf):
                _check_scan_unit(message, pdf, known, placement)
    for item in forms:
        recommendation = _record_form(app, session, message, item, placement)
        if recommendation is not None and recommendation not in placement.touched:
            placement.touched.append(recommendation)
    for pdf in pdfs:
        if pdf.attachment.placed:
            continue
        recommendation = _place_lone_pdf(session, message, pdf)
        if recommendation is None:
            recommendation = _record_pdf_only(app, session, message, pdf)
        if recommendation is None:
            placement.problems.append(
                Problem("pdf_waiting_for_word", {"file": pdf.attachment.filename})
            )
            continue
        if recommendation not in placement.touched:
            placement.touched.append(recommendation)
    return placement


def read_from_scan(pdf: PdfInput) -> bool:
    """Whether the PDF's text (and so its unit and rows) was read by OCR from a scan."""
    return pdf.form is not None and pdf.attachment.text_source == "ocr"


def _known_units(session: Session, message: Message, forms: Sequence[FormInput]) -> list[KnownUnit]:
    """The units already known, with the addresses that sent their forms: every recorded
    recommendation, the Word forms of this message, and the recommenders of the online export."""
    senders: dict[str, tuple[str, set[str]]] = {}

    def add(unit: str | None, sender: str = "") -> None:
        if not unit or unit.startswith(UNIT_UNREAD):
            return
        key = normalize_unit(unit) or unit
        name, addresses = senders.get(key, (unit, set()))
        senders[key] = (unit if len(unit) > len(name) else name, addresses)  # the full name
        if sender:
            addresses.add(sender)

    for unit, sender in session.exec(
        select(Recommendation.unit, Recommendation.sender).order_by(col(Recommendation.id))
    ).all():
        add(unit, sender)
    for item in forms:
        add(item.form.unit, message.sender)
    recommenders = session.exec(select(Submission.recommender).distinct()).all()
    for recommender in sorted(name for name in recommenders if name):
        add(recommender)
    return [KnownUnit(name, tuple(sorted(addresses))) for name, addresses in senders.values()]


def _check_scan_unit(
    message: Message, pdf: PdfInput, known: Sequence[KnownUnit], placement: Placement
) -> None:
    """Trust the unit read from a scan only once checked against the known units and the
    sender: the checked unit (or none) is what pairing then sees."""
    assert pdf.form is not None
    read = pdf.form.unit
    checked = check_scan_unit(
        read,
        known,
        sender=message.sender,
        filename=pdf.attachment.filename,
        subject=message.subject,
    )
    pdf.form = replace(pdf.form, unit=checked.unit)
    pdf.attachment.pdf_unit = checked.unit
    if checked.unit is None and read:
        placement.problems.append(
            Problem("scan_unit_untrusted", {"file": pdf.attachment.filename, "unit": read})
        )


def _record_pdf_only(
    app: App, session: Session, message: Message, pdf: PdfInput
) -> Recommendation | None:
    """Record a unit's recommendation from its sealed PDF alone, awaiting the Word version.

    Only a PDF whose text layer reads as a whole form (the unit and its case table) counts,
    and only while the unit has no current recommendation with a Word form: then the PDF's
    rows are matched as the Word's would be. The Word form, when it comes, supersedes this
    version and takes the PDF as its own (see `_record_form`).
    """
    form = pdf.form
    if form is None or not form.reads_as_form or form.unit is None:
        return None
    unit = form.unit.strip()
    unit_key = normalize_unit(unit) or unit
    current = _current_for(session, unit_key, unit)
    if current is not None and current.word_attachment_id is not None:
        return None
    version = 1
    if current is not None:
        unit_key, version = current.unit_key, current.version + 1
        current.current = False
        session.add(current)
    recommendation = Recommendation(
        unit=unit,
        unit_key=unit_key,
        version=version,
        current=True,
        sender=message.sender,
        late=message.late,
        created_at=app.clock(),
    )
    session.add(recommendation)
    session.flush()
    _add_rows(session, recommendation, form.cases)
    _join(
        session,
        recommendation,
        pdf.attachment,
        method=PDF_ONLY,
        score=1.0,
        evidence=[_pdf_only_evidence(pdf)],
    )
    return recommendation


def _pdf_only_evidence(pdf: PdfInput) -> str:
    if read_from_scan(pdf):
        return "the scan of the sealed form, read by OCR, names the unit and lists its cases"
    return "the sealed PDF's own text names the unit and lists its cases"


def _add_rows(
    session: Session, recommendation: Recommendation, cases: Sequence[FormCaseRow]
) -> None:
    for case in cases:
        session.add(
            CaseRow(
                recommendation_id=recommendation.id or 0,
                row=case.row,
                title=case.title,
                applicant=case.applicant,
                category=case.category,
                ref_on_form=case.ref,
                note=case.note,
            )
        )


def _record_form(
    app: App, session: Session, message: Message, item: FormInput, placement: Placement
) -> Recommendation | None:
    form = item.form
    written = (form.unit or "").strip()
    unit = written or _unit_from_history(session, message.sender)
    if not written and unit:
        placement.problems.append(
            Problem("unit_from_history", {"file": item.attachment.filename, "unit": unit})
        )
    if not unit:
        unit = f"{UNIT_UNREAD}{message.sender or message.sha256[:12]}"
        placement.problems.append(Problem("unit_unread", {"file": item.attachment.filename}))
        placement.needs_person = True
    unit_key = normalize_unit(unit) or unit
    current = _current_for(session, unit_key, unit)
    if current is None and written:
        current = _unread_unit_of_sender(session, message.sender)
    if current is not None and current.word_attachment_id is not None:
        previous_word = session.get(Attachment, current.word_attachment_id)
        if previous_word is not None and previous_word.sha256 == item.attachment.sha256:
            _attach_best_pdf(session, message, current, item)
            return current
    version = 1
    if current is not None:
        if units_match(current.unit, unit):
            unit_key = current.unit_key
            if len(current.unit) > len(unit):
                unit = current.unit  # a correction may use the short name: keep the full one
            version = current.version + 1
        current.current = False
        session.add(current)
    recommendation = Recommendation(
        unit=unit,
        unit_key=unit_key,
        version=version,
        current=True,
        sender=message.sender,
        word_attachment_id=item.attachment.id,
        contact_name=form.contact.name,
        contact_title=form.contact.title,
        contact_phone=form.contact.phone,
        contact_mobile=form.contact.mobile,
        contact_email=form.contact.email,
        opinion=form.opinion,
        signed_on=form.signed_on,
        late=message.late,
        created_at=app.clock(),
    )
    session.add(recommendation)
    session.flush()
    _add_rows(session, recommendation, form.cases)
    _attach_best_pdf(session, message, recommendation, item)
    if (
        recommendation.pdf_attachment_id is None
        and current is not None
        and current.word_attachment_id is None
        and current.pdf_attachment_id is not None
        and units_match(current.unit, unit)
    ):
        pdf = session.get(Attachment, current.pdf_attachment_id)
        if pdf is not None:
            _join(
                session,
                recommendation,
                pdf,
                method="evidence",
                score=1.0,
                evidence=["the unit's sealed PDF, recorded before its Word form came"],
            )
    return recommendation


def _attach_best_pdf(
    session: Session, message: Message, recommendation: Recommendation, item: FormInput
) -> None:
    """Join the best waiting PDF (this message's first) to a recommendation lacking one."""
    manual = _manual_pdf(session, recommendation)
    if manual is not None:
        _join(
            session, recommendation, manual, method="manual", score=1.0, evidence=["staff decision"]
        )
        return
    if recommendation.pdf_attachment_id is not None:
        return
    waiting = session.exec(
        select(Attachment, Message)
        .join(Message, col(Message.id) == col(Attachment.message_pk))
        .where(col(Attachment.kind) == "form_pdf", col(Attachment.placed) == sa.false())
        .order_by(col(Message.received_at), col(Attachment.id))
    ).all()
    if not waiting:
        return
    titles = tuple(case.title for case in item.form.cases)
    word_facts = _facts(message, item.attachment, unit=recommendation.unit, titles=titles)
    candidates = [
        _facts(pdf_message, pdf, unit=pdf.pdf_unit, titles=()) for pdf, pdf_message in waiting
    ]
    index, score, scores = best_pdf_for_word(
        word_facts, candidates, accept=PDF_ACCEPT, margin=PDF_MARGIN
    )
    evidence = list(score.evidence)
    if index is None:
        index = _only_pdf_of_sender(session, recommendation, word_facts, candidates, scores)
        if index is None:
            return
        score = scores[index]
        evidence = [*score.evidence, SENDERS_ONLY_PDF]
    _join(
        session,
        recommendation,
        waiting[index][0],
        method="same_message" if waiting[index][1].id == message.id else "evidence",
        score=score.score,
        evidence=evidence,
    )


def _plausible_same_sender(word: DocumentFacts, pdf: DocumentFacts, score: PairScore) -> bool:
    """Same address, close in time, and the PDF names no other unit."""
    return (
        bool(word.sender)
        and word.sender.lower() == pdf.sender.lower()
        and abs(word.received_at - pdf.received_at) <= ARRIVAL_WINDOW
        and not any("another unit" in reason for reason in score.evidence)
    )


def _open_recommendations_of(session: Session, sender: str) -> list[Recommendation]:
    return [
        row
        for row in session.exec(
            select(Recommendation).where(
                col(Recommendation.current) == sa.true(),
                col(Recommendation.pdf_attachment_id).is_(None),
            )
        ).all()
        if row.sender.lower() == sender.lower()
    ]


def _only_pdf_of_sender(
    session: Session,
    recommendation: Recommendation,
    word: DocumentFacts,
    pdfs: Sequence[DocumentFacts],
    scores: Sequence[PairScore],
) -> int | None:
    """The one waiting PDF this sender sent, when the sender has only this form waiting.

    A scan carries no text and a webmail address no organisation, so the weighed evidence
    stays below the bar; yet one PDF and one Word from one address days apart are one form.
    Two of either leave it to staff.
    """
    same_sender = [
        position
        for position, (pdf, score) in enumerate(zip(pdfs, scores, strict=True))
        if _plausible_same_sender(word, pdf, score)
    ]
    if len(same_sender) != 1:
        return None
    others = [
        row for row in _open_recommendations_of(session, word.sender) if row.id != recommendation.id
    ]
    return same_sender[0] if not others else None


def _place_lone_pdf(session: Session, message: Message, pdf: PdfInput) -> Recommendation | None:
    """Place a PDF that came without a Word form onto a recommendation still lacking one."""
    open_recommendations = session.exec(
        select(Recommendation).where(
            col(Recommendation.current) == sa.true(),
            col(Recommendation.pdf_attachment_id).is_(None),
        )
    ).all()
    for recommendation in open_recommendations:
        manual = _manual_pdf(session, recommendation)
        if manual is not None and manual.id == pdf.attachment.id:
            _join(
                session,
                recommendation,
                manual,
                method="manual",
                score=1.0,
                evidence=["staff decision"],
            )
            return recommendation
    scored: list[tuple[PairScore, Recommendation, DocumentFacts]] = []
    pdf_facts = _facts(
        message,
        pdf.attachment,
        unit=pdf.attachment.pdf_unit,
        titles=tuple(pdf.form.titles) if pdf.form is not None else (),
    )
    for recommendation in open_recommendations:
        word = session.get(Attachment, recommendation.word_attachment_id)
        if word is None:
            continue
        word_message = session.get(Message, word.message_pk)
        if word_message is None:
            continue
        titles = tuple(
            session.exec(
                select(CaseRow.title).where(CaseRow.recommendation_id == recommendation.id)
            ).all()
        )
        word_facts = _facts(word_message, word, unit=recommendation.unit, titles=titles)
        scored.append((score_pair(word_facts, pdf_facts), recommendation, word_facts))
    if not scored:
        return None
    scored.sort(key=lambda pair: pair[0].score, reverse=True)
    best_score, best, _ = scored[0]
    runner_up = scored[1][0].score if len(scored) > 1 else 0.0
    evidence = list(best_score.evidence)
    by_unit = [
        (score, recommendation)
        for score, recommendation, _ in scored
        if read_from_scan(pdf) and units_match(recommendation.unit, pdf.attachment.pdf_unit)
    ]
    if (best_score.score < PDF_ACCEPT or best_score.score - runner_up < PDF_MARGIN) and len(
        by_unit
    ) == 1:
        best_score, best = by_unit[0]
        evidence = [*best_score.evidence, UNIT_ON_SCAN]
    elif best_score.score < PDF_ACCEPT or best_score.score - runner_up < PDF_MARGIN:
        same_sender = [
            (score, recommendation)
            for score, recommendation, word_facts in scored
            if _plausible_same_sender(word_facts, pdf_facts, score)
        ]
        if len(same_sender) != 1 or len(_open_recommendations_of(session, message.sender)) != 1:
            return None
        best_score, best = same_sender[0]
        evidence = [*best_score.evidence, SENDERS_ONLY_PDF]
    _join(
        session,
        best,
        pdf.attachment,
        method="evidence",
        score=best_score.score,
        evidence=evidence,
    )
    return best


def _manual_pdf(session: Session, recommendation: Recommendation) -> Attachment | None:
    decision = session.exec(
        select(ManualDecision)
        .where(
            ManualDecision.kind == "pdf",
            col(ManualDecision.unit_key) == recommendation.unit_key,
            col(ManualDecision.version) == recommendation.version,
        )
        .order_by(col(ManualDecision.id).desc())
    ).first()
    if decision is None or decision.attachment_sha256 is None:
        return None
    return session.exec(
        select(Attachment)
        .where(col(Attachment.sha256) == decision.attachment_sha256)
        .order_by(col(Attachment.id))
    ).first()


def _join(
    session: Session,
    recommendation: Recommendation,
    pdf: Attachment,
    *,
    method: str,
    score: float,
    evidence: list[str],
) -> None:
    if recommendation.pdf_attachment_id is not None and recommendation.pdf_attachment_id != pdf.id:
        previous = session.get(Attachment, recommendation.pdf_attachment_id)
        if previous is not None:
            previous.placed = False
            previous.agreement = None  # it was checked against this recommendation's Word
            session.add(previous)
    recommendation.pdf_attachment_id = pdf.id
    recommendation.pdf_method = method
    recommendation.pdf_score = round(score, 3)
    recommendation.pdf_evidence = evidence
    pdf_message = session.get(Message, pdf.message_pk)
    if pdf_message is not None and pdf_message.late:
        recommendation.late = True
    pdf.placed = True
    session.add(pdf)
    session.add(recommendation)
    session.flush()
