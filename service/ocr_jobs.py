"""The OCR job: scanned PDFs read once each, by content, apart from the poll.

Processing queues a job for a scanned form PDF (`queue_ocr`) and holds the receipt of its
message (`message.details["awaiting_ocr"]`: the scans it waits for). `run_ocr_jobs` claims
queued jobs with a lease, has an `OcrWorker` read each, and on completion, in ONE
transaction, stores the reading, records what it says on every attachment with that content
(`service.scans.apply_reading`), and queues each held receipt whose scans are now all read.
`release_held_receipts` (run periodically) queues the receipts still held after
`ocr.max_wait`, saying the scan is still being read; OCR finishing later sends no second
receipt (the receipt's idempotency key).

A try that fails (the worker crashed, ran out of time or memory) is tried again, up to
`ocr.max_attempts`; then the job is `failed` and the PDF carries problem `ocr_failed` for
staff. A transient fault (database, disk) never fails a job: the claim's lease runs out and
the job is tried again.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col, select

from parsers.model import Problem
from parsers.ocr import ScanReading
from service.agreement import stored_reading
from service.bootstrap import App
from service.db import is_postgres
from service.faults import one_line, transient_fault
from service.models import Attachment, Message, OcrJob, Recommendation
from service.ocr_worker import WHY, Event, OcrAttemptError, OcrEngineUnavailableError, OcrWorker
from service.outbox import queue_unit_receipt
from service.scans import apply_reading

logger = logging.getLogger(__name__)

AWAITING = "awaiting_ocr"
"""`message.details` key: the SHA-256 of each scan whose reading the receipt waits for."""
HELD_TOUCHED = "awaiting_ocr_touched"
"""`message.details` key: the recommendations processing touched, for the held receipt."""
SENT_EARLY = "receipt_before_ocr"
"""`message.details` key: the receipt went out after `ocr.max_wait`, before the reading."""

OPEN_STATUSES = ("queued", "running")


def queue_ocr(session: Session, sha256: str, now: datetime) -> None:
    """Queue the OCR of the PDF with this content, unless a job for it exists (any state).

    Safe against a second process queuing the same content at the same moment.
    """
    values = {
        "sha256": sha256,
        "status": "queued",
        "attempts": 0,
        "pages": 0,
        "seconds": 0.0,
        "created_at": now,
    }
    dialect = postgresql if is_postgres(session.get_bind().engine) else sqlite
    statement = dialect.insert(OcrJob).values(**values).on_conflict_do_nothing()
    session.execute(statement)


def ocr_counts(session: Session) -> dict[str, int]:
    """How many jobs are in each state (queued, running, done, failed)."""
    rows = session.exec(
        select(col(OcrJob.status), sa.func.count()).group_by(col(OcrJob.status))
    ).all()
    counts = {"queued": 0, "running": 0, "done": 0, "failed": 0}
    counts.update({status: int(count) for status, count in rows})
    return counts


def job_lease(app: App) -> timedelta:
    """How long a claim holds a job: every page at its time limit, and a margin."""
    ocr = app.settings.ocr
    return ocr.page_timeout * (ocr.max_pages + 2) + timedelta(minutes=1)


@dataclass(frozen=True)
class ClaimedJob:
    """A job this process is reading: its content and which try this is."""

    sha256: str
    attempt: int
    filename: str


def claim_job(app: App) -> ClaimedJob | None:
    """Take the oldest queued job (or one whose claim ran out) for this process.

    PostgreSQL: `FOR UPDATE SKIP LOCKED`, so several processes never take the same job.
    SQLite (one process): the claim is a compare-and-set on (status, attempts), so two
    worker threads of this process never take the same job either.
    """
    now = app.clock()
    claimable = sa.or_(
        col(OcrJob.status) == "queued",
        sa.and_(col(OcrJob.status) == "running", col(OcrJob.lease_until) < now),
    )
    with Session(app.engine) as session:
        query = (
            select(OcrJob)
            .where(claimable)
            .order_by(col(OcrJob.created_at), col(OcrJob.sha256))
            .limit(1)
        )
        if is_postgres(app.engine):
            query = query.with_for_update(skip_locked=True)
        job = session.exec(query).first()
        if job is None:
            return None
        sha256, status, attempt = job.sha256, job.status, job.attempts + 1
        claimed = session.execute(
            sa.update(OcrJob)
            .where(
                col(OcrJob.sha256) == sha256,
                col(OcrJob.status) == status,
                col(OcrJob.attempts) == attempt - 1,
            )
            .values(status="running", attempts=attempt, lease_until=now + job_lease(app))
        )
        session.commit()
        if claimed.rowcount != 1:  # type: ignore[attr-defined]
            return claim_job(app)  # another thread took it first: take the next one
        filename = session.exec(
            select(col(Attachment.filename))
            .where(col(Attachment.sha256) == sha256)
            .order_by(col(Attachment.id))
        ).first()
        return ClaimedJob(sha256=sha256, attempt=attempt, filename=filename or "")


# --- what a finished job changes -------------------------------------------------------


def _held_messages(session: Session, attachments: Iterable[Attachment]) -> list[Message]:
    ids = sorted({item.message_pk for item in attachments})
    if not ids:
        return []
    return list(session.exec(select(Message).where(col(Message.id).in_(ids))).all())


def _touched(session: Session, ids: Iterable[int]) -> list[Recommendation]:
    found = []
    for recommendation_id in dict.fromkeys(ids):
        recommendation = session.get(Recommendation, recommendation_id)
        if recommendation is not None:
            found.append(recommendation)
    return found


def release_receipt(
    app: App, session: Session, message: Message, also_touched: Sequence[int] = ()
) -> None:
    """Queue the held receipt of `message` now (once: the outbox's idempotency key)."""
    details = dict(message.details)
    held = [int(item) for item in details.get(HELD_TOUCHED, [])]
    details[AWAITING] = []
    message.details = details
    session.add(message)
    queue_unit_receipt(app, session, message, _touched(session, [*held, *also_touched]))


def _store_outcome(
    app: App,
    session: Session,
    job: OcrJob,
    reading: ScanReading | None,
    problem: Problem | None,
) -> tuple[int, int]:
    """Record on every attachment with the job's content what its OCR gave, and queue each
    held receipt that no longer waits; returns (attachments updated, receipts queued)."""
    attachments = session.exec(
        select(Attachment)
        .where(col(Attachment.sha256) == job.sha256, col(Attachment.kind) == "form_pdf")
        .order_by(col(Attachment.id))
    ).all()
    touched_by_message: dict[int, list[int]] = {}
    updated = 0
    for attachment in attachments:
        if attachment.text_source not in (None, "none"):
            continue  # already read (a reprocess merged the cached reading)
        if reading is not None:  # apply_reading also brings the matches up to date
            touched = apply_reading(app, session, attachment, reading)
            touched_by_message.setdefault(attachment.message_pk, []).extend(touched)
            updated += 1
        elif problem is not None:
            stored = problem.with_params(file=attachment.filename).as_json()
            if stored not in attachment.problems:
                attachment.problems = [*attachment.problems, stored]
                session.add(attachment)
                updated += 1
    released = 0
    for message in _held_messages(session, attachments):
        details = dict(message.details)
        waiting = [item for item in details.get(AWAITING, []) if item != job.sha256]
        if problem is not None:
            file_problems = [item for item in message.problems if item.get("code") == "ocr_failed"]
            for attachment in attachments:
                if attachment.message_pk != message.id:
                    continue
                stored = problem.with_params(file=attachment.filename).as_json()
                if stored not in file_problems:
                    message.problems = [*message.problems, stored]
                    file_problems.append(stored)
                    message.status = "needs_attention"  # a person reads the PDF instead
        if details.get(SENT_EARLY):
            # the receipt said the scan was being read: for staff that is now past
            message.problems = [
                item
                for item in message.problems
                if not (
                    item.get("code") == "scan_being_read"
                    and item.get("params", {}).get("file")
                    in {att.filename for att in attachments if att.message_pk == message.id}
                )
            ]
        was_waiting = bool(details.get(AWAITING))
        details[AWAITING] = waiting
        message.details = details
        session.add(message)
        if was_waiting and not waiting:
            release_receipt(app, session, message, touched_by_message.get(message.id or 0, []))
            released += 1
    return updated, released


def finish_job(
    app: App,
    claimed: ClaimedJob,
    *,
    reading: ScanReading | None = None,
    failure: OcrAttemptError | None = None,
    pages: int = 0,
    seconds: float = 0.0,
) -> str:
    """Record how a try ended, in one transaction; returns the job's new status.

    A reading: `done`, recorded on its attachments, held receipts queued. A failed try:
    `queued` again while tries remain (and the failure is not about the file itself), else
    `failed` with problem `ocr_failed` on the PDF, and held receipts queued.
    """
    now = app.clock()
    with Session(app.engine, expire_on_commit=False) as session:
        # locked till commit: a process that took the job over after this claim ran out
        # waits, then sees the job settled (PostgreSQL; SQLite has one writer anyway)
        job = session.get(OcrJob, claimed.sha256, with_for_update=True)
        if job is None or job.status != "running" or job.attempts != claimed.attempt:
            logger.warning(
                "OCR of %s: the claim was lost (another process took the job); result dropped",
                claimed.sha256[:12],
            )
            return job.status if job is not None else "gone"
        problem = None
        if reading is not None:
            job.status = "done"
            job.reading = reading.as_json()
            job.problem = None
        else:
            assert failure is not None
            tries_left = job.attempts < app.settings.ocr.max_attempts
            if tries_left and not failure.permanent:
                job.status = "queued"
                job.lease_until = None
                job.problem = {"kind": failure.kind, "detail": failure.detail}
                session.add(job)
                session.commit()
                return "queued"
            job.status = "failed"
            problem = Problem(
                "ocr_failed",
                {
                    "file": claimed.filename,
                    "attempts": job.attempts,
                    "why": WHY[failure.kind],
                    "detail": failure.detail,
                },
            )
            job.problem = problem.as_json()
        job.lease_until = None
        job.pages = pages
        job.seconds = seconds
        job.finished_at = now
        session.add(job)
        _store_outcome(app, session, job, reading, problem)
        session.commit()
        return job.status


# --- running jobs -----------------------------------------------------------------------


@dataclass
class OcrReport:
    """What one `run_ocr_jobs` did."""

    done: int = 0
    retried: int = 0
    failed: int = 0
    problems: list[str] = field(default_factory=list)
    unavailable: str | None = None  # the engine could not be started: nothing was read

    @property
    def settled(self) -> int:
        """Jobs brought to their end (read or given up)."""
        return self.done + self.failed


class OcrPool:
    """The worker processes of one intake process (`ocr.workers`), kept between runs so each
    engine is loaded once. `command_prefix` is passed to every `OcrWorker`."""

    def __init__(self, app: App, *, command_prefix: Sequence[str] = ()) -> None:
        self.workers = [
            OcrWorker(app.settings.ocr, command_prefix=command_prefix, name=f"ocr-worker-{n}")
            for n in range(1, app.settings.ocr.workers + 1)
        ]

    def close(self) -> None:
        """Stop every worker process."""
        for worker in self.workers:
            worker.close()

    def __enter__(self) -> OcrPool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


JobEvent = Callable[[ClaimedJob, Event], None]
"""Called with the job and each worker event (`page_started`, `page_read`, `reading`), and
with `{"event": "finished", "status": ...}` once the job's outcome is stored."""


def run_ocr_jobs(
    app: App,
    pool: OcrPool,
    *,
    stop: threading.Event | None = None,
    on_event: JobEvent | None = None,
) -> OcrReport:
    """Read queued scans until none is left (or `stop` is set), one job per worker at once.

    Never raises for a PDF's trouble (a failed try is recorded on the job) nor for a
    transient fault (logged; the job's claim runs out and it is tried again).
    """
    report = OcrReport()
    lock = threading.Lock()
    stop = stop or threading.Event()

    def work(worker: OcrWorker) -> None:
        while not stop.is_set():
            try:
                claimed = claim_job(app)
            except Exception as exc:
                if transient_fault(exc) is None:
                    raise
                logger.warning("OCR: cannot claim a job now (%s); later", one_line(exc))
                return
            if claimed is None:
                return
            if not _run_one(
                app, worker, claimed, report=report, lock=lock, on_event=on_event, stop=stop
            ):
                return

    threads = [
        threading.Thread(target=work, args=(worker,), name=worker.name, daemon=True)
        for worker in pool.workers[1:]
    ]
    for thread in threads:
        thread.start()
    if pool.workers:
        work(pool.workers[0])
    for thread in threads:
        thread.join()
    return report


def _run_one(
    app: App,
    worker: OcrWorker,
    claimed: ClaimedJob,
    *,
    report: OcrReport,
    lock: threading.Lock,
    on_event: JobEvent | None,
    stop: threading.Event,
) -> bool:
    """Read one claimed job and store its outcome; False when this worker should stop.

    A try cut short because the service is stopping (its worker killed) is given back
    without being charged: the scan is read at the next start."""
    name = claimed.filename or claimed.sha256[:12]
    try:
        worker.start()
    except OcrEngineUnavailableError as exc:
        _unclaim(app, claimed)
        if stop.is_set():  # the service stopped it while it loaded
            return False
        logger.error("OCR: %s; scans wait until it is fixed", exc)
        with lock:
            report.unavailable = str(exc)
        return False
    logger.info("OCR: reading %s (try %d)", name, claimed.attempt)
    path = app.archive.path_for(claimed.sha256)

    def forward(event: Event) -> None:
        if on_event is not None:
            on_event(claimed, event)

    try:
        result = worker.read(path, filename=claimed.filename, on_event=forward)
        status = _store(
            app,
            claimed,
            stop,
            reading=result.reading,
            pages=result.pages,
            seconds=result.seconds,
        )
    except OcrAttemptError as failure:
        if stop.is_set():
            _unclaim(app, claimed)
            logger.info("OCR of %s: stopped by the service stopping; read at the next start", name)
            return False
        logger.warning("OCR of %s: try %d failed: %s", name, claimed.attempt, failure.detail)
        status = _store(app, claimed, stop, failure=failure)
    if status is None:
        return False
    forward({"event": "finished", "status": status})
    with lock:
        if status == "done":
            report.done += 1
        elif status == "failed":
            report.failed += 1
            report.problems.append(f"{name}: could not be read; left to staff")
        elif status == "queued":
            report.retried += 1
    logger.info("OCR: %s %s", name, status)
    return True


STORE_RETRY_DELAYS = (0.0, 1.0, 2.0, 4.0, 8.0, 16.0)
"""Seconds before each try to store an outcome while the database is away; after the last,
the job's claim runs out and the scan is read again later."""


def _store(
    app: App,
    claimed: ClaimedJob,
    stop: threading.Event,
    **outcome: Any,
) -> str | None:
    """`finish_job`, tried again with back-off through a transient fault (database lost,
    disk full); None when it could not be stored (nothing is lost: the claim runs out and the
    job is read again). Anything else is a bug and propagates."""
    name = claimed.filename or claimed.sha256[:12]
    for delay in STORE_RETRY_DELAYS:
        if delay and stop.wait(delay):
            break
        try:
            return finish_job(app, claimed, **outcome)
        except Exception as exc:
            if transient_fault(exc) is None:
                raise
            logger.warning(
                "OCR of %s: could not store the outcome (%s); trying again", name, one_line(exc)
            )
    logger.warning("OCR of %s: outcome not stored; the scan is read again later", name)
    return None


def _unclaim(app: App, claimed: ClaimedJob) -> None:
    """Give a job back without charging it a try (the engine, not the PDF, was at fault).
    If the database is away, the claim simply runs out later."""
    try:
        _give_back(app, claimed)
    except Exception as exc:
        if transient_fault(exc) is None:
            raise
        logger.warning("OCR: could not give a job back (%s); its claim runs out", one_line(exc))


def _give_back(app: App, claimed: ClaimedJob) -> None:
    with Session(app.engine) as session:
        session.execute(
            sa.update(OcrJob)
            .where(
                col(OcrJob.sha256) == claimed.sha256,
                col(OcrJob.status) == "running",
                col(OcrJob.attempts) == claimed.attempt,
            )
            .values(status="queued", attempts=claimed.attempt - 1, lease_until=None)
        )
        session.commit()


def read_queued_scans(app: App, console: Console) -> OcrReport:
    """Read every queued scan now and wait for it (`intake poll --once`, `intake demo`), then
    queue the receipts that waited: a progress bar on a terminal, one log line a page else."""
    with Session(app.engine) as session:
        total = ocr_counts(session)["queued"]
    if total == 0:
        release_held_receipts(app)
        return OcrReport()
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    )

    def show(job: ClaimedJob, event: Event) -> None:
        name = job.filename or job.sha256[:12]
        if event.get("event") == "page_started":
            where = f"page {event.get('page')} of {event.get('pages')}"
            progress.update(task, description=f"reading scans: {name}, {where}")
            if not console.is_terminal:
                logger.info("OCR: reading %s, %s", name, where)
        elif event.get("event") == "finished" and event.get("status") != "queued":
            progress.advance(task)

    with progress, OcrPool(app) as pool:
        task = progress.add_task("reading scans", total=total)
        report = run_ocr_jobs(app, pool, on_event=show)
    release_held_receipts(app)
    return report


# --- receipts that wait -----------------------------------------------------------------


def release_held_receipts(app: App) -> int:
    """Queue the receipts still waiting for OCR: those whose scans are all settled (a job
    that finished while their message was being processed) and those past `ocr.max_wait`,
    which say the scan is still being read. With OCR turned off since, every held receipt
    goes at once (saying nothing of a reading). Returns how many were queued."""
    now = app.clock()
    enabled = app.settings.ocr.enabled
    max_wait = app.settings.ocr.max_wait
    released = 0
    with Session(app.engine, expire_on_commit=False) as session:
        candidates = session.exec(
            select(Attachment, OcrJob)
            .join(OcrJob, col(OcrJob.sha256) == col(Attachment.sha256))
            .where(col(Attachment.kind) == "form_pdf", col(Attachment.text_source) == "none")
        ).all()
        by_message: dict[int, list[tuple[Attachment, OcrJob]]] = {}
        for attachment, job in candidates:
            by_message.setdefault(attachment.message_pk, []).append((attachment, job))
        for message_pk, pairs in sorted(by_message.items()):
            message = session.get(Message, message_pk)
            if message is None or not message.details.get(AWAITING):
                continue
            for _attachment, job in pairs:
                if job.status in ("done", "failed"):
                    # settled while this message was processed: record it now
                    reading = stored_reading(session, job.sha256)
                    failed = job.status == "failed" and job.problem is not None
                    problem = Problem.from_json(job.problem) if failed else None
                    _store_outcome(app, session, job, reading, problem)
            if not message.details.get(AWAITING):  # the same object: the identity map
                released += 1
                continue
            processed_at = message.processed_at or message.archived_at
            if enabled and processed_at + max_wait > now:
                continue
            if enabled:
                waiting = set(message.details.get(AWAITING, []))
                files = [att.filename for att, _ in pairs if att.sha256 in waiting]
                message.problems = [
                    *message.problems,
                    *(Problem("scan_being_read", {"file": name}).as_json() for name in files),
                ]
                message.details = {**message.details, SENT_EARLY: True}
            release_receipt(app, session, message)
            released += 1
            logger.info(
                "message %s: receipt sent before its scan was read (ocr.max_wait passed)",
                message.message_id or message_pk,
            )
        session.commit()
    return released


def held_receipt_details(awaiting: Sequence[str], touched: Sequence[Any]) -> dict[str, Any]:
    """The `message.details` entries that hold a receipt for these scans."""
    return {
        AWAITING: sorted(set(awaiting)),
        HELD_TOUCHED: [item.id for item in touched if getattr(item, "id", None) is not None],
    }
