"""Staff's word on a sealed PDF's seal, which wins over the automatic seal check.

A `seal_unconfirmed` decision (`seal_present` / `seal_absent`) is kept as its `Decision` row,
keyed by the PDF's SHA-256 in `after["pdf_sha256"]`: every copy of that file takes staff's
word, now and whenever the archive is read again (`intake reprocess`), until it is undone.
"""

from __future__ import annotations

from sqlmodel import Session, col, select

from service.models import Attachment, Decision

SEAL_OF_ACTION = {"seal_present": "present", "seal_absent": "absent"}
"""The seal each `seal_unconfirmed` action says the PDF has."""

STAFF_SEAL_LABELS = {"present": "已盖公章", "absent": "未盖公章"}
"""A seal as staff confirmed it, in Chinese (the seal check's own words say 检出)."""


def staff_seals(session: Session, *, besides: int | None = None) -> dict[str, Decision]:
    """For each PDF (by SHA-256) whose seal staff confirmed: the standing decision, the latest
    when there are several; `besides` leaves one decision out (the one being undone)."""
    rows = session.exec(
        select(Decision)
        .where(
            col(Decision.kind) == "seal_unconfirmed",
            col(Decision.action).in_(list(SEAL_OF_ACTION)),
            col(Decision.undone_at).is_(None),
        )
        .order_by(col(Decision.id))
    ).all()
    return {
        str(row.after["pdf_sha256"]): row
        for row in rows
        if row.after.get("pdf_sha256") and row.id != besides
    }


def apply_staff_seal(session: Session, attachment: Attachment) -> None:
    """Give a form PDF just read the seal staff confirmed for its file, if they did."""
    decided = staff_seals(session).get(attachment.sha256)
    if decided is not None:
        attachment.seal = SEAL_OF_ACTION[decided.action]


def set_seal(session: Session, sha256: str, seal: str) -> None:
    """Every copy of the form PDF `sha256` gets `seal`."""
    for attachment in session.exec(
        select(Attachment).where(
            col(Attachment.kind) == "form_pdf", col(Attachment.sha256) == sha256
        )
    ):
        attachment.seal = seal
        session.add(attachment)
    session.flush()
