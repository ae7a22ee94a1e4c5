"""One poll of the contact mailbox: fetch, archive, record in the ledger, then process.

The order is the promise: raw bytes are archived and a ledger row committed before any
parsing; processing failures mark a message `needs_attention` and the batch goes on; the
after-processing action (move / flag / seen) comes last. A kill at any point followed by
another poll ends in the same state as an uninterrupted run.
"""

from __future__ import annotations

import email.parser
import email.policy
import email.utils
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session, col, select

from config.errors import MailboxError
from service.bootstrap import App
from service.leases import LeaseBusyError, held_lease
from service.mailbox import FetchedMessage, Mailbox, RemoteMessage
from service.models import Message, PollCursor
from service.processing import process_pending

logger = logging.getLogger(__name__)

Progress = Callable[[int, int], None]
"""Called with (done, total) as messages are archived."""


@dataclass
class PollReport:
    """What one poll did, for the CLI, the log and the health endpoint."""

    listed: int = 0
    archived: int = 0
    duplicates: int = 0
    too_large: int = 0
    processed: int = 0
    needs_attention: int = 0
    marked: int = 0
    skipped_busy: bool = False
    error: str | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error is None


def poll(app: App, *, progress: Progress | None = None) -> PollReport:
    """Read new mail once; never raises for mailbox trouble (the report carries the error)."""
    report = PollReport()
    mailbox = app.open_mailbox()
    lease_name = f"poll:{mailbox.account}/{mailbox.folder}"
    ttl = max(timedelta(minutes=10), app.settings.mailbox.timeout * 4)
    try:
        with held_lease(app.engine, lease_name, clock=app.clock, ttl=ttl) as renew:
            _recover_unprocessed(app, report)
            try:
                with mailbox:
                    _poll_folder(app, mailbox, report, renew=renew, progress=progress)
                    _mark_done(app, mailbox, report)
            except MailboxError as exc:
                report.error = str(exc)
                logger.warning("poll of %s stopped: %s", mailbox.account, exc)
            _record_outcome(app, mailbox, report)
    except LeaseBusyError:
        report.skipped_busy = True
    return report


def _recover_unprocessed(app: App, report: PollReport) -> None:
    """Process what an earlier, interrupted poll archived but did not get to."""
    counts = process_pending(app)
    report.processed += counts.processed
    report.needs_attention += counts.needs_attention


def _cursor(session: Session, mailbox: Mailbox) -> PollCursor:
    cursor = session.get(PollCursor, (mailbox.account, mailbox.folder))
    if cursor is None:
        cursor = PollCursor(account=mailbox.account, folder=mailbox.folder)
        session.add(cursor)
    return cursor


def _poll_folder(
    app: App,
    mailbox: Mailbox,
    report: PollReport,
    *,
    renew: Callable[[], bool],
    progress: Progress | None,
) -> None:
    state = mailbox.state()
    with Session(app.engine) as session:
        cursor = _cursor(session, mailbox)
        rescan = not mailbox.stable_uids or cursor.uidvalidity != state.uidvalidity
        above = 0 if rescan else cursor.last_uid
        if rescan and cursor.uidvalidity and mailbox.stable_uids:
            logger.warning(
                "UIDVALIDITY of %s/%s changed from %s to %s: re-scanning, recognising known mail",
                mailbox.account,
                mailbox.folder,
                cursor.uidvalidity,
                state.uidvalidity,
            )
        known_uids: set[int] = set()
        if rescan:
            known_uids = (
                set(
                    session.exec(
                        select(Message.uid).where(
                            Message.account == mailbox.account,
                            Message.folder == mailbox.folder,
                            Message.uidvalidity == state.uidvalidity,
                        )
                    ).all()
                )
                if mailbox.stable_uids
                else set()
            )
        cursor.uidvalidity = state.uidvalidity
        cursor.last_uid = above
        session.add(cursor)
        session.commit()

    since = app.settings.mailbox.since
    listing = mailbox.list_newer(above, since=since.date() if since else None)
    listing = [item for item in listing if item.uid not in known_uids]
    report.listed = len(listing)
    if not listing:
        return
    limit = app.settings.mailbox.max_message_size
    too_large = [item for item in listing if item.size > limit]
    wanted = [item.uid for item in listing if item.size <= limit]
    if too_large:
        _record_too_large(app, mailbox, state.uidvalidity, too_large, report)
    done = 0
    batch: list[FetchedMessage] = []
    batch_size = app.settings.mailbox.batch_size
    for fetched in mailbox.fetch(wanted, batch_size=batch_size):
        batch.append(fetched)
        if len(batch) >= batch_size:
            _archive_batch(app, mailbox, state.uidvalidity, batch, report)
            done += len(batch)
            batch = []
            renew()
            if progress:
                progress(done, len(wanted))
    if batch:
        _archive_batch(app, mailbox, state.uidvalidity, batch, report)
        done += len(batch)
        if progress:
            progress(done, len(wanted))
    counts = process_pending(app)
    report.processed += counts.processed
    report.needs_attention += counts.needs_attention


def _header_message_id(raw: bytes) -> str | None:
    headers = email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(
        raw, headersonly=True
    )
    value = headers.get("Message-ID")
    if value is None:
        return None
    text = " ".join(str(value).split())
    return text[:998] or None


def _archive_batch(
    app: App,
    mailbox: Mailbox,
    uidvalidity: int,
    batch: Sequence[FetchedMessage],
    report: PollReport,
) -> None:
    """Archive a batch durably, then commit its ledger rows and the cursor in one transaction."""
    now = app.clock()
    rows = []
    for fetched in batch:
        digest = app.archive.put(fetched.raw)
        rows.append((fetched, digest))
    with Session(app.engine) as session:
        digests = [digest for _, digest in rows]
        existing = {
            row.sha256: row
            for row in session.exec(
                select(Message).where(
                    col(Message.account) == mailbox.account,
                    col(Message.sha256).in_(digests),
                )
            ).all()
        }
        for fetched, digest in rows:
            known = existing.get(digest)
            if known is not None:
                report.duplicates += 1
                if mailbox.stable_uids and (known.uidvalidity, known.uid) != (
                    uidvalidity,
                    fetched.uid,
                ):
                    known.uidvalidity, known.uid = uidvalidity, fetched.uid
                    session.add(known)
                continue
            message = Message(
                account=mailbox.account,
                folder=mailbox.folder,
                uidvalidity=uidvalidity if mailbox.stable_uids else 0,
                uid=fetched.uid if mailbox.stable_uids else content_uid(digest),
                message_id=_header_message_id(fetched.raw),
                sha256=digest,
                size=len(fetched.raw),
                received_at=fetched.internaldate or now,
                archived_at=now,
                after_done=app.settings.mailbox.after == "none",
            )
            session.add(message)
            existing[digest] = message
            report.archived += 1
        cursor = _cursor(session, mailbox)
        cursor.last_uid = max(cursor.last_uid, *(fetched.uid for fetched in batch))
        session.add(cursor)
        session.commit()


def content_uid(digest: str) -> int:
    """A stand-in UID for sources without durable UIDs: derived from the content."""
    return int(digest[:13], 16)


def _record_too_large(
    app: App,
    mailbox: Mailbox,
    uidvalidity: int,
    items: Sequence[RemoteMessage],
    report: PollReport,
) -> None:
    """Keep an over-size message's headers and tell staff; its body is not downloaded."""
    headers = mailbox.fetch_headers([item.uid for item in items])
    now = app.clock()
    limit_mb = app.settings.mailbox.max_message_size / 1_048_576
    with Session(app.engine) as session:
        for item in items:
            header_bytes = headers.get(item.uid, b"")
            digest = app.archive.put(header_bytes)
            if session.exec(
                select(Message).where(Message.account == mailbox.account, Message.sha256 == digest)
            ).first():
                report.duplicates += 1
                continue
            parsed = email.parser.BytesHeaderParser(policy=email.policy.default).parsebytes(
                header_bytes
            )
            reason = (
                f"message of {item.size / 1_048_576:.1f} MB is over the {limit_mb:.0f} MB limit "
                f"(mailbox.max_message_size): not downloaded; open it in the mailbox "
                f"(UID {item.uid}) and handle it by hand"
            )
            sender = email.utils.parseaddr(str(parsed.get("From", "")))
            session.add(
                Message(
                    account=mailbox.account,
                    folder=mailbox.folder,
                    uidvalidity=uidvalidity if mailbox.stable_uids else 0,
                    uid=item.uid if mailbox.stable_uids else content_uid(digest),
                    message_id=_header_message_id(header_bytes),
                    sha256=digest,
                    size=item.size,
                    received_at=item.internaldate or now,
                    archived_at=now,
                    downloaded=False,
                    status="needs_attention",
                    kind="other",
                    sender=sender[1].lower()[:320],
                    sender_name=sender[0][:300],
                    subject=" ".join(str(parsed.get("Subject", "")).split()),
                    problems=[reason],
                    processed_at=now,
                    late=(item.internaldate or now) > app.settings.campaign.deadline,
                    after_done=True,
                )
            )
            report.too_large += 1
            report.problems.append(reason)
        cursor = _cursor(session, mailbox)
        cursor.last_uid = max(cursor.last_uid, *(item.uid for item in items))
        session.add(cursor)
        session.commit()


def _mark_done(app: App, mailbox: Mailbox, report: PollReport) -> None:
    """Apply the after-processing action to processed messages still in this folder."""
    action = app.settings.mailbox.after
    if action == "none":
        return
    with Session(app.engine) as session:
        state = mailbox.state()
        rows = session.exec(
            select(Message).where(
                Message.account == mailbox.account,
                Message.folder == mailbox.folder,
                Message.uidvalidity == state.uidvalidity,
                Message.after_done == sa.false(),
                Message.status != "pending",
            )
        ).all()
        if not rows:
            return
        mailbox.apply_after([row.uid for row in rows], action)
        for row in rows:
            row.after_done = True
            session.add(row)
        session.commit()
        report.marked += len(rows)


def _record_outcome(app: App, mailbox: Mailbox, report: PollReport) -> None:
    now = app.clock()
    with Session(app.engine) as session:
        cursor = _cursor(session, mailbox)
        cursor.last_poll_at = now
        if report.error is None:
            cursor.last_success_at = now
            cursor.last_error = None
            cursor.failing_since = None
        else:
            cursor.last_error = report.error
            cursor.failing_since = cursor.failing_since or now
        session.add(cursor)
        session.commit()


def last_poll(engine: sa.Engine) -> PollCursor | None:
    """The most recently polled cursor, for status and health."""
    with Session(engine) as session:
        return session.exec(
            select(PollCursor).order_by(col(PollCursor.last_poll_at).desc())
        ).first()


def received_before(moment: datetime, start: datetime | None) -> bool:
    """Whether mail received at `moment` predates the campaign start (no automatic replies)."""
    return start is not None and moment < start
