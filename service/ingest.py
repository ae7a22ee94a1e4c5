"""One poll of the contact mailbox: fetch, archive, record in the ledger, then process.

The order is the promise: raw bytes are archived and a ledger row committed before any
parsing; processing failures of the input mark a message `needs_attention` and the batch
goes on, transient ones (database, disk, locks) leave it `pending` for a later poll; the
after-processing action (move / flag / seen) comes last, only for messages whose outcome is
committed (never for a pending one). A transient fault anywhere ends the poll with one log
line and an error in the report, never a traceback. A kill at any point followed by another
poll ends in the same state as an uninterrupted run: the cursor only moves past a UID in the
transaction that records it, and a message fetched twice is recognised by its SHA-256
(unique per account in the ledger).
"""

from __future__ import annotations

import email.parser
import email.policy
import email.utils
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta

import sqlalchemy as sa
from sqlmodel import Session, col, select

from config.errors import MailboxError
from parsers.model import Problem
from service.bootstrap import App
from service.faults import one_line, transient_fault
from service.leases import LeaseBusyError, held_lease
from service.mailbox import FetchedMessage, Mailbox, RemoteMessage, batched, read_header_block
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
    deferred: int = 0  # left pending after a transient fault, retried by a later poll
    old_mail: int = 0  # found by the first poll of the folder: recorded, not replied to
    marked: int = 0
    skipped_busy: bool = False
    error: str | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error is None


PROCESS_CHUNK = 100
"""Messages processed between two lease renewals."""

MARK_CHUNK = 500
"""UIDs per after-processing command."""


LEDGER_ROW_DEFAULTS: dict[str, object] = {
    "downloaded": True,
    "status": "pending",
    "sender": "",
    "sender_name": "",
    "reply_to": [],
    "subject": "",
    "references": [],
    "no_reply": False,
    "late": False,
    "problems": [],
    "details": {},
    "retries": 0,
}
"""A new ledger row's values before processing (the JSON columns have no column default)."""


class LeaseLostError(RuntimeError):
    """The poll lease expired and another process took it: this poll must stop at once."""


def poll(app: App, *, progress: Progress | None = None, process: bool = True) -> PollReport:
    """Read new mail once; never raises for mailbox trouble (the report carries the error).

    `process=False` stops at the durable ledger (fetch, archive, commit): parsing and the
    after-processing action wait for the next poll that processes.
    """
    report = PollReport()
    mailbox = app.open_mailbox()
    lease_name = f"poll:{mailbox.account}/{mailbox.folder}"
    ttl = max(timedelta(minutes=10), app.settings.mailbox.timeout * 4)
    try:
        with held_lease(app.engine, lease_name, clock=app.clock, ttl=ttl) as renew:
            try:
                with mailbox:
                    _poll_folder(app, mailbox, report, renew=renew, progress=progress)
            except MailboxError as exc:
                report.error = str(exc)
                logger.warning("poll of %s stopped: %s", mailbox.account, exc)
            except Exception as exc:
                _stop_on_fault(report, exc, f"reading {mailbox.account}")
            try:
                if process:
                    # also what an earlier, interrupted poll archived but did not get to
                    _process_all(app, report, renew=renew)
                    if report.error is None:
                        _mark_done(app, mailbox, report)
            except MailboxError as exc:
                report.error = str(exc)
                logger.warning("after-processing on %s stopped: %s", mailbox.account, exc)
            except LeaseLostError as exc:
                report.error = str(exc)
            except Exception as exc:
                _stop_on_fault(report, exc, "processing")
            _record_outcome(app, mailbox, report)
    except LeaseBusyError:
        report.skipped_busy = True
    except Exception as exc:
        _stop_on_fault(report, exc, "recording the poll")
    return report


def _stop_on_fault(report: PollReport, exc: Exception, doing: str) -> None:
    """End the poll on a transient fault with one log line; anything else is a bug: raise."""
    fault = transient_fault(exc)
    if fault is None:
        raise exc
    report.error = report.error or f"{fault} unavailable while {doing}: {one_line(exc)}"
    logger.warning(
        "poll stopped: %s fault while %s (%s); nothing is lost, the next poll goes on",
        fault,
        doing,
        one_line(exc),
    )


def _process_all(app: App, report: PollReport, *, renew: Callable[[], bool]) -> None:
    """Process every pending message, renewing the lease between chunks."""
    while True:
        counts = process_pending(app, limit=PROCESS_CHUNK)
        report.processed += counts.processed
        report.needs_attention += counts.needs_attention
        report.deferred += counts.deferred
        if counts.deferred or counts.settled < PROCESS_CHUNK:
            return
        _renew_or_stop(renew)


def _renew_or_stop(renew: Callable[[], bool]) -> None:
    if not renew():
        raise LeaseLostError(
            "the poll lease expired and another process took over: stopped here, "
            "the other poll carries on (raise mailbox.timeout if this repeats)"
        )


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
    """List what is new, record the over-size ones, fetch and archive the rest in batches.

    The cursor moves with each archived batch, and past everything listed only at the end:
    an over-size or vanished message above the last archived one is listed again after a
    crash (and recognised), never skipped.
    """
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
        if rescan and mailbox.stable_uids:
            known_uids = set(
                session.exec(
                    select(Message.uid).where(
                        col(Message.account) == mailbox.account,
                        col(Message.folder) == mailbox.folder,
                        col(Message.uidvalidity) == state.uidvalidity,
                    )
                ).all()
            )
        if (cursor.uidvalidity, cursor.last_uid) != (state.uidvalidity, above):
            cursor.uidvalidity = state.uidvalidity
            cursor.last_uid = above
            session.add(cursor)
            session.commit()

        first_poll = cursor.first_poll_at is None
        # UIDs of another UIDVALIDITY, or positions in a folder of files, say nothing later
        old_through = 0 if rescan else cursor.first_listing_uid

    since = app.settings.mailbox.since
    listing = mailbox.list_newer(above, since=since.date() if since else None)
    listing = [item for item in listing if item.uid not in known_uids]
    report.listed = len(listing)
    if first_poll:
        old_through = _record_first_poll(app, mailbox, listing, report)
    if not listing:
        return
    limit = app.settings.mailbox.max_message_size
    too_large = [item for item in listing if item.size > limit]
    wanted = [item.uid for item in listing if item.size <= limit]
    if progress:
        progress(0, len(wanted))
    if too_large:
        _record_too_large(app, mailbox, state.uidvalidity, too_large, report)
    done = 0
    batch: list[FetchedMessage] = []
    batch_size = app.settings.mailbox.batch_size
    for fetched in mailbox.fetch(wanted, batch_size=batch_size):
        batch.append(fetched)
        if len(batch) >= batch_size:
            _archive_batch(app, mailbox, state.uidvalidity, batch, report, old_through=old_through)
            done += len(batch)
            batch = []
            _renew_or_stop(renew)
            if progress:
                progress(done, len(wanted))
    if batch:
        _archive_batch(app, mailbox, state.uidvalidity, batch, report, old_through=old_through)
        done += len(batch)
        if progress:
            progress(done, len(wanted))
    _advance_cursor(app, mailbox, max(item.uid for item in listing))


def _record_first_poll(
    app: App, mailbox: Mailbox, listing: Sequence[RemoteMessage], report: PollReport
) -> int:
    """The folder's first poll: remember what was already there (no automatic replies to it,
    unless `campaign.starts` or `campaign.reply_to_old_mail` say otherwise); the highest UID.

    Committed before anything is archived, so a first poll cut short still knows, on the
    next poll, which messages were old.
    """
    through = max((item.uid for item in listing), default=0)
    with Session(app.engine) as session:
        cursor = _cursor(session, mailbox)
        cursor.first_poll_at = app.clock()
        cursor.first_listing_uid = through
        session.add(cursor)
        session.commit()
    campaign = app.settings.campaign
    if listing and campaign.starts is None and not campaign.reply_to_old_mail:
        report.old_mail = len(listing)
        logger.warning(
            "first poll of %s/%s: found %d messages already in the mailbox; they are recorded "
            "and processed but get no automatic reply (set campaign.starts or "
            "campaign.reply_to_old_mail = true to reply to them)",
            mailbox.account,
            mailbox.folder,
            len(listing),
        )
    return through


def _advance_cursor(app: App, mailbox: Mailbox, uid: int) -> None:
    with Session(app.engine) as session:
        cursor = _cursor(session, mailbox)
        if cursor.last_uid < uid:
            cursor.last_uid = uid
            session.add(cursor)
            session.commit()


HEADER_SEARCH_LIMIT = 1 << 20
"""Look for the end of the header block only this far into a message."""


def _header_block(raw: bytes) -> bytes:
    """The header block, looked for only in the first MiB (a body can be 50 MB)."""
    return read_header_block(raw[:HEADER_SEARCH_LIMIT])


def _header_message_id(raw: bytes) -> str | None:
    """The Message-ID header, read from the header block only (bodies can be 50 MB)."""
    headers = email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(
        _header_block(raw), headersonly=True
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
    *,
    old_through: int = 0,
) -> None:
    """Archive a batch durably, then commit its ledger rows and the cursor in one transaction.

    Messages listed by the folder's first poll (UID up to `old_through`) are marked
    `before_first_poll`.
    """
    now = app.clock()
    digests = app.archive.put_many([fetched.raw for fetched in batch])
    with Session(app.engine) as session:
        existing = {
            row.sha256: row
            for row in session.exec(
                select(Message).where(
                    col(Message.account) == mailbox.account,
                    col(Message.sha256).in_(digests),
                )
            ).all()
        }
        new_rows: list[dict[str, object]] = []
        seen: set[str] = set()
        for fetched, digest in zip(batch, digests, strict=True):
            known = existing.get(digest)
            if known is None and digest in seen:
                report.duplicates += 1
                continue
            if known is not None:
                report.duplicates += 1
                if (
                    mailbox.stable_uids
                    and known.folder == mailbox.folder
                    and known.uidvalidity != uidvalidity
                ):
                    # the same mail under a new UIDVALIDITY: follow it, so that the
                    # after-processing action and the UID shown to staff stay right
                    known.uidvalidity, known.uid = uidvalidity, fetched.uid
                    session.add(known)
                continue
            new_rows.append(
                {
                    "account": mailbox.account,
                    "folder": mailbox.folder,
                    "uidvalidity": uidvalidity if mailbox.stable_uids else 0,
                    "uid": fetched.uid if mailbox.stable_uids else content_uid(digest),
                    "message_id": _header_message_id(fetched.raw),
                    "sha256": digest,
                    "size": len(fetched.raw),
                    "received_at": fetched.internaldate or now,
                    "archived_at": now,
                    "after_done": app.settings.mailbox.after == "none",
                    **LEDGER_ROW_DEFAULTS,
                    "before_first_poll": fetched.uid <= old_through,
                }
            )
            seen.add(digest)
            report.archived += 1
        if new_rows:
            # one executemany: building 50 SQLModel objects costs more than the fetch
            session.execute(sa.insert(Message), new_rows)
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
    """Keep an over-size message's headers and tell staff; its body is not downloaded.

    The cursor is not moved here (a smaller message below these may not be archived yet);
    a header block seen again after a crash is recognised by its SHA-256.
    """
    headers = mailbox.fetch_headers([item.uid for item in items])
    now = app.clock()
    limit_mb = app.settings.mailbox.max_message_size / 1_048_576
    blocks = [headers.get(item.uid, b"") for item in items]
    digests = app.archive.put_many(blocks)
    with Session(app.engine) as session:
        known = set(
            session.exec(
                select(Message.sha256).where(
                    col(Message.account) == mailbox.account, col(Message.sha256).in_(digests)
                )
            ).all()
        )
        for item, header_bytes, digest in zip(items, blocks, digests, strict=True):
            if digest in known:
                report.duplicates += 1
                continue
            known.add(digest)
            parsed = email.parser.BytesHeaderParser(policy=email.policy.default).parsebytes(
                header_bytes
            )
            reason = Problem(
                "message_too_large",
                {
                    "size_mb": f"{item.size / 1_048_576:.1f}",
                    "limit_mb": f"{limit_mb:.1f}",
                    "uid": item.uid,
                },
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
                    problems=[reason.as_json()],
                    processed_at=now,
                    late=(item.internaldate or now) > app.settings.campaign.deadline,
                    after_done=True,  # left in the folder, where staff are told to look
                )
            )
            report.too_large += 1
            report.problems.append(f"{reason.message} (UID {item.uid})")
        session.commit()


def _mark_done(app: App, mailbox: Mailbox, report: PollReport) -> None:
    """Apply the after-processing action to messages whose outcome is committed.

    Runs after processing, on a fresh connection (processing a backlog can outlast the
    server's idle timeout), and only when something is left to mark. A message that ended
    `needs_attention` is marked too: the ledger and the archive hold it, and the attention
    list tells staff about it. Only over-size messages, never downloaded, stay untouched.
    """
    action = app.settings.mailbox.after
    if action == "none" or not mailbox.stable_uids:
        return
    with Session(app.engine) as session:
        cursor = session.get(PollCursor, (mailbox.account, mailbox.folder))
        if cursor is None:
            return
        rows = session.exec(
            select(Message).where(
                col(Message.account) == mailbox.account,
                col(Message.folder) == mailbox.folder,
                col(Message.uidvalidity) == cursor.uidvalidity,
                col(Message.after_done) == sa.false(),
                col(Message.status) != "pending",
            )
        ).all()
        if not rows:
            return
        with app.open_mailbox() as marking:
            if marking.state().uidvalidity != cursor.uidvalidity:
                return  # the folder was recreated: the next poll re-scans and re-points
            for chunk in batched(sorted(row.uid for row in rows), MARK_CHUNK):
                marking.apply_after(chunk, action)
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
