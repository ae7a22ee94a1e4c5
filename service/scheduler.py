"""`intake run`: APScheduler starts poll, deliver, digest and the watch folder until stopped;
a thread of its own reads scanned PDFs (OCR), never inside the poll.

Every job is a plain function (`poll`, `deliver`, `queue_digest`, `import_watch_folder`);
this module only decides when they run and makes sure none runs twice at once: in this
process a lock per job, across processes the database (the poll lease, `SKIP LOCKED`
delivery, a digest lease and a watch-folder lease). SIGTERM or SIGINT stops scheduling,
lets the job in hand finish and returns 0; a second signal ends the process at once.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType

import sqlalchemy as sa
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlmodel import Session, col, select

from config.errors import ConfigError, IntakeError, MailboxError
from config.settings import trial_warning
from parsers.model import Problem
from service.archive import sha256_hex
from service.bootstrap import App
from service.db import is_postgres
from service.digest import queue_digest
from service.faults import transient_fault
from service.health import HealthServer, ServiceCounters, start_health_server
from service.imports import ImportReport, import_submissions
from service.ingest import PollReport, poll
from service.leases import LeaseBusyError, held_lease
from service.logging_setup import event_line, structured_log_lines
from service.models import ImportRun, Message
from service.ocr_jobs import OcrPool, release_held_receipts, run_ocr_jobs
from service.outbox import deliver

logger = logging.getLogger(__name__)

WATCHED_SUFFIXES = frozenset({".xlsx", ".csv"})
SETTLE_TIME = timedelta(seconds=2)
"""A watched file must be this old before it is read, so a file still being copied waits."""

IDLE_WAIT_LIMIT = timedelta(minutes=25)
"""One IMAP IDLE lasts at most this long (RFC 2177: servers may drop it after 29 minutes)."""

IDLE_RETRY_AFTER = timedelta(seconds=30)
OCR_CHECK_EVERY = timedelta(seconds=30)
"""How often the OCR thread looks for work by itself (jobs queued by another instance, a
claim that ran out) and releases receipts that waited `ocr.max_wait` for their scans."""
JOB_LEASE_TTL = timedelta(minutes=10)
QUIET_LOGGERS = {"apscheduler": logging.ERROR}
"""APScheduler logs every job run at INFO, and a warning for each run skipped while the same
job is still busy (expected: a long first poll, an IDLE-triggered poll); our own lines say
what each job did."""


WATCH_FOLDER = "监视文件夹"
"""Who the watch folder's imports are recorded as."""


@dataclass(frozen=True)
class WatchedFile:
    """One file the watch folder imported (or could not read)."""

    path: Path
    sha256: str
    report: ImportReport | None
    error: str | None = None


def import_watch_folder(
    app: App, folder: Path, *, settled_before: datetime, unreadable: set[str] | None = None
) -> list[WatchedFile]:
    """Import each .xlsx / .csv export in `folder` whose content was never imported before.

    Contents already recorded as an `ImportRun` are skipped, so a restart or a second
    instance imports nothing twice; files modified after `settled_before` wait for the next
    run. Oldest first, so the newest export has the last word. Hashes in `unreadable` (which
    this function adds to) are not tried again until the file changes.
    """
    if not folder.is_dir():
        return []
    unreadable = set() if unreadable is None else unreadable
    with Session(app.engine) as session:
        imported = set(
            session.exec(
                select(ImportRun.sha256).where(
                    ImportRun.kind == "submissions",
                    col(ImportRun.status).in_(["applied", "undone"]),  # not a mere preview
                )
            ).all()
        )
    candidates = []
    for path in folder.iterdir():
        if (
            path.suffix.lower() not in WATCHED_SUFFIXES
            or path.name.startswith((".", "~$"))  # hidden files, Office lock files
            or not path.is_file()
        ):
            continue
        modified = datetime.fromtimestamp(path.stat().st_mtime, UTC)
        if modified <= settled_before:
            candidates.append((modified, path))
    results: list[WatchedFile] = []
    for _, path in sorted(candidates):
        digest = sha256_hex(path.read_bytes())
        if digest in imported or digest in unreadable:
            continue
        try:
            report = import_submissions(app, path, by=WATCH_FOLDER)
        except IntakeError as error:
            unreadable.add(digest)
            results.append(WatchedFile(path=path, sha256=digest, report=None, error=str(error)))
            continue
        imported.add(digest)
        results.append(WatchedFile(path=path, sha256=digest, report=report))
    return results


class Service:
    """The jobs of one `intake run` process and the locks that keep each to one at a time."""

    def __init__(self, app: App, stop: threading.Event, counters: ServiceCounters) -> None:
        self.app = app
        self.stop = stop
        self.counters = counters
        self._poll_lock = threading.Lock()
        self._poll_wanted = threading.Event()
        self._deliver_lock = threading.Lock()
        self._unreadable_imports: set[str] = set()
        self._reported_failures: set[tuple[str, str]] = set()
        self._ocr_wanted = threading.Event()
        self._ocr_wanted.set()  # at start: scans left queued by the last run, held receipts
        self.ocr_pool = OcrPool(app) if app.settings.ocr.enabled else None

    # -- jobs ----------------------------------------------------------------------------

    def request_poll(self) -> None:
        """Poll now, or make the poll in hand go round once more (IDLE and the timer both ask)."""
        self._poll_wanted.set()
        while self._poll_wanted.is_set() and not self.stop.is_set():
            if not self._poll_lock.acquire(blocking=False):
                return  # the running poll sees the request when it finishes
            try:
                while self._poll_wanted.is_set() and not self.stop.is_set():
                    self._poll_wanted.clear()
                    self._poll_once()
            finally:
                self._poll_lock.release()

    def _poll_once(self) -> None:
        newest_before = self._newest_message_id()
        report = poll(self.app)
        if report.skipped_busy:
            logger.debug("poll skipped: another instance is polling this mailbox")
            return
        self.counters.count("polls")
        if report.error is not None:
            self.counters.count("poll_errors")
            self.app.log(event_line("poll_failed", error=report.error))
        self.counters.count("messages_ingested", report.archived + report.too_large)
        self._log_new_problems(newest_before)
        if report.archived or report.too_large or report.processed:
            self.app.log(_poll_summary(report))
            self.deliver_now()
        if report.processed or report.needs_attention:
            self._ocr_wanted.set()  # the OCR thread reads the scans this poll queued

    # -- OCR -----------------------------------------------------------------------------

    def read_scans(self) -> None:
        """The OCR thread: read queued scans whenever a poll asks (and every
        OCR_CHECK_EVERY), then queue and send the receipts that waited for them."""
        while not self.stop.is_set():
            self._ocr_wanted.wait(OCR_CHECK_EVERY.total_seconds())
            self._ocr_wanted.clear()
            if self.stop.is_set():
                break
            try:
                self._read_scans_once()
            except Exception as error:
                self.counters.count("job_errors")
                self._report_failure("ocr", error)
                self.stop.wait(OCR_CHECK_EVERY.total_seconds())

    def _read_scans_once(self) -> None:
        if self.ocr_pool is None:  # OCR turned off: receipts held before go out as they are
            if release_held_receipts(self.app):
                self.deliver_now()
            return
        report = run_ocr_jobs(self.app, self.ocr_pool, stop=self.stop)
        self.counters.count("scans_read", report.done)
        self.counters.count("scans_failed", report.failed)
        released = release_held_receipts(self.app)
        if report.done or report.failed or report.retried:
            self.app.log(
                event_line(
                    "ocr_done",
                    read=report.done,
                    retried=report.retried,
                    failed=report.failed,
                    receipts_released=released,
                )
            )
        if report.done or report.failed or released:
            self.deliver_now()

    def deliver_now(self) -> None:
        """Send what the outbox holds; never two deliveries at once in this process.

        On SQLite rows are claimed without row locks, so two concurrent deliveries in one
        process could both send a row: the lock is what prevents that.
        """
        with self._deliver_lock:
            report = deliver(self.app)
        self.counters.count("mail_sent", report.sent)
        self.counters.count("mail_failed", report.failed)
        for problem in report.errors[:20]:
            self.app.log(event_line("delivery_problem", error=problem))

    def queue_digest_and_deliver(self) -> None:
        """The daily digest: queued once per day across instances, then sent."""
        try:
            with held_lease(self.app.engine, "digest", clock=self.app.clock, ttl=JOB_LEASE_TTL):
                queued = queue_digest(self.app)
        except LeaseBusyError:
            return
        except sa.exc.IntegrityError:
            queued = 0  # another instance queued the same day's digest first
        self.app.log(event_line("digest_queued", staff_addresses=queued))
        self.deliver_now()

    def import_watched_files(self) -> None:
        """Import new or changed exports from `schedule.watch_folder`."""
        folder = self.app.settings.schedule.watch_folder
        if folder is None:
            return
        try:
            with held_lease(
                self.app.engine, "watch-folder", clock=self.app.clock, ttl=JOB_LEASE_TTL
            ):
                results = import_watch_folder(
                    self.app,
                    folder,
                    settled_before=self.app.clock() - SETTLE_TIME,
                    unreadable=self._unreadable_imports,
                )
        except LeaseBusyError:
            return
        for item in results:
            if item.report is None:
                self.app.log(event_line("import_failed", file=item.path.name, error=item.error))
                continue
            self.counters.count("imports")
            report = item.report
            self.app.log(
                event_line(
                    "submissions_imported",
                    file=item.path.name,
                    added=len(report.added),
                    changed=len(report.changed),
                    unchanged=len(report.unchanged),
                    withdrawn=len(report.withdrawn),
                    rejected=len(report.rejected),
                )
            )
            for rejected in report.rejected[:20]:
                self.app.log(event_line("import_problem", file=item.path.name, problem=rejected))
        if any(item.report is not None for item in results):
            self.deliver_now()

    # -- IMAP IDLE -----------------------------------------------------------------------

    def wait_for_mail(self) -> None:
        """Hold an IDLE connection and poll as soon as the server announces new mail.

        The connection is opened afresh after each announcement, so the folder's UIDNEXT
        seen by `wait_for_new` moves on with what the poll fetched.
        """
        wait = min(self.app.settings.schedule.poll_every, IDLE_WAIT_LIMIT).total_seconds()
        while not self.stop.is_set():
            try:
                with self.app.open_mailbox() as mailbox:
                    # from here on, new mail is announced (tests wait for this line, not a timer)
                    self.app.log(event_line("idle_waiting", folder=mailbox.folder))
                    while not self.stop.is_set():
                        began = time.monotonic()
                        if mailbox.wait_for_new(wait):
                            break
                        if time.monotonic() - began < min(1.0, wait / 2):
                            self.app.log(
                                event_line(
                                    "idle_unavailable",
                                    problem="the mailbox cannot announce new mail (no IDLE); "
                                    "relying on schedule.poll_every",
                                )
                            )
                            return
                if not self.stop.is_set():
                    self.request_poll()
            except MailboxError as error:
                self.app.log(event_line("idle_problem", error=str(error)))
                self.stop.wait(IDLE_RETRY_AFTER.total_seconds())
            except Exception as error:
                self._report_failure("idle", error)
                self.stop.wait(IDLE_RETRY_AFTER.total_seconds())

    # -- helpers -------------------------------------------------------------------------

    def guarded(self, name: str, job: Callable[[], None]) -> Callable[[], None]:
        """`job` that reports its failure in one line instead of stopping the scheduler's log."""

        def run() -> None:
            try:
                job()
            except Exception as error:
                self.counters.count("job_errors")
                self._report_failure(name, error)

        return run

    def _report_failure(self, job: str, error: Exception) -> None:
        # The first failure of a kind gets its traceback; repeats (a database down for an
        # hour, polled every minute) get one line each.
        signature = (job, type(error).__name__)
        text = str(getattr(error, "orig", None) or error).strip().splitlines()
        line = event_line(
            "job_failed", job=job, error_type=type(error).__name__, error=text[0] if text else ""
        )
        if transient_fault(error) is not None:
            logger.warning(line)  # a passing fault (database, disk): one line, retried next run
        elif signature in self._reported_failures or isinstance(error, IntakeError):
            logger.error(line)
        else:
            self._reported_failures.add(signature)
            logger.error(line, exc_info=error)

    def _newest_message_id(self) -> int:
        with Session(self.app.engine) as session:
            return int(session.exec(select(sa.func.max(Message.id))).one() or 0)

    def _log_new_problems(self, newest_before: int) -> None:
        """One line per problem of each message this poll left needing attention.

        Processing already logs one line per message; the reasons are what staff act on.
        """
        with Session(self.app.engine) as session:
            rows = session.exec(
                select(Message)
                .where(col(Message.id) > newest_before, Message.status == "needs_attention")
                .order_by(col(Message.id))
            ).all()
        for row in rows:
            for stored in row.problems:
                problem = Problem.from_json(stored)
                self.app.log(
                    event_line(
                        "message_problem",
                        id=row.id,
                        message_id=row.message_id,
                        sender=row.sender,
                        code=problem.code,
                        problem=problem.message,
                    )
                )


def _poll_summary(report: PollReport) -> str:
    return event_line(
        "poll_done",
        listed=report.listed,
        archived=report.archived,
        duplicates=report.duplicates,
        too_large=report.too_large,
        processed=report.processed,
        needs_attention=report.needs_attention,
        marked=report.marked,
    )


def build_scheduler(service: Service) -> BackgroundScheduler:
    """The scheduler with every job; poll, deliver and the watch folder also run at start."""
    settings = service.app.settings
    zone = settings.campaign.zone
    poll_every = settings.schedule.poll_every
    deliver_every = settings.schedule.deliver_every
    scheduler = BackgroundScheduler(
        executors={"default": ThreadPoolExecutor(max_workers=4)},
        job_defaults={"coalesce": True, "max_instances": 1},
        timezone=zone,
    )
    started = datetime.now(zone)

    def grace(every: timedelta) -> int:
        return max(1, int(every.total_seconds()))

    scheduler.add_job(
        service.guarded("poll", service.request_poll),
        IntervalTrigger(seconds=poll_every.total_seconds(), timezone=zone),
        id="poll",
        name="poll",
        next_run_time=started,
        misfire_grace_time=grace(poll_every),
    )
    scheduler.add_job(
        service.guarded("deliver", service.deliver_now),
        IntervalTrigger(seconds=deliver_every.total_seconds(), timezone=zone),
        id="deliver",
        name="deliver",
        next_run_time=started,
        misfire_grace_time=grace(deliver_every),
    )
    digest_at = settings.schedule.digest_at
    scheduler.add_job(
        service.guarded("digest", service.queue_digest_and_deliver),
        CronTrigger(
            hour=digest_at.hour, minute=digest_at.minute, second=digest_at.second, timezone=zone
        ),
        id="digest",
        name="digest",
        misfire_grace_time=3600,  # a digest an hour late is still wanted
    )
    if settings.schedule.watch_folder is not None:
        scheduler.add_job(
            service.guarded("watch folder", service.import_watched_files),
            IntervalTrigger(seconds=poll_every.total_seconds(), timezone=zone),
            id="watch_folder",
            name="watch folder",
            next_run_time=started,
            misfire_grace_time=grace(poll_every),
        )
    return scheduler


@contextmanager
def _signals_set(stop: threading.Event) -> Iterator[None]:
    """SIGTERM / SIGINT set `stop`; a second one ends the process at once (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_signal(number: int, _frame: FrameType | None) -> None:
        if stop.is_set():
            sys.stderr.write(event_line("stopping_now", signal=signal.Signals(number).name) + "\n")
            sys.stderr.flush()
            os._exit(1)
        stop.set()

    previous = {
        number: signal.signal(number, on_signal) for number in (signal.SIGTERM, signal.SIGINT)
    }
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def run_service(app: App, *, stop: threading.Event | None = None) -> int:
    """Run the scheduled jobs until SIGTERM / SIGINT (or `stop` is set); 0 after a clean stop."""
    stop = stop or threading.Event()
    counters = ServiceCounters()
    with structured_log_lines(QUIET_LOGGERS), _signals_set(stop):
        return _serve(app, stop, counters)


def _serve(app: App, stop: threading.Event, counters: ServiceCounters) -> int:
    settings = app.settings
    account = app.open_mailbox().account  # nothing connects until a poll enters it
    app.log(
        event_line(
            "service_starting",
            database=app.engine.url.render_as_string(hide_password=True),
            mailbox=f"{account}/{settings.mailbox.folder}",
            poll_every=f"{settings.schedule.poll_every.total_seconds():g}s",
            deliver_every=f"{settings.schedule.deliver_every.total_seconds():g}s",
            digest_at=f"{settings.schedule.digest_at.isoformat()} {settings.campaign.timezone}",
            watch_folder=settings.schedule.watch_folder,
            idle=settings.mailbox.idle,
            ocr_workers=settings.ocr.workers if settings.ocr.enabled else 0,
            pid=os.getpid(),
        )
    )
    warning = trial_warning(settings)
    if warning is not None:
        logger.warning(event_line("sample_settings", problem=warning))
    if not is_postgres(app.engine):
        logger.warning(
            event_line(
                "single_process_only",
                problem="the database is SQLite: run only ONE `intake run` process on it; "
                "use PostgreSQL (database.url) for several",
            )
        )
    try:
        health_server = start_health_server(app, counters)
    except OSError as error:
        where = f"{settings.health.host}:{settings.health.port}"
        raise ConfigError(
            f"health endpoint cannot listen on {where}: {error.strerror}", key="health.port"
        ) from error
    service = Service(app, stop, counters)
    scheduler = build_scheduler(service)
    scheduler.start()
    if health_server is not None:
        app.log(event_line("health_endpoint", url=_health_url(health_server)))
    if settings.mailbox.idle:
        threading.Thread(target=service.wait_for_mail, name="intake-idle", daemon=True).start()
    ocr_thread = threading.Thread(target=service.read_scans, name="intake-ocr", daemon=True)
    ocr_thread.start()
    try:
        while not stop.wait(1.0):
            pass
    finally:
        app.log(event_line("service_stopping", detail="finishing the job in hand"))
        if service.ocr_pool is not None:
            # a scan being read is given back untried and read again at the next start
            service.ocr_pool.close()
        ocr_thread.join(timeout=60)
        if service.ocr_pool is not None:
            service.ocr_pool.close()
        scheduler.shutdown(wait=True)
        if health_server is not None:
            health_server.stop()
        app.engine.dispose()
    app.log(event_line("service_stopped"))
    return 0


def _health_url(server: HealthServer) -> str:
    host = server.server_address[0]
    return f"http://{host!s}:{server.port}/healthz"
