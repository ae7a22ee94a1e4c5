"""Is the service well? `check_health` for `intake health`, and `/healthz` + `/metrics` over HTTP.

Healthy means: the database answers and its schema is at the newest migration, the
mailbox was read successfully within `mailbox.unreachable_after` (+ one `poll_every`), and
no message has waited out `faults.RETRY_BOUND` tries of a transient fault (an outage still
being retried within the bound is shown as a warning). A
refused login is unhealthy at once, since it will not mend itself; a network blip is
tolerated for `unreachable_after`. Everything is read from the database, so any instance
(or a one-off `intake health`) sees the same answer.
"""

from __future__ import annotations

import logging
import re
import threading
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import cast

import sqlalchemy as sa
from alembic.script import ScriptDirectory
from sqlmodel import Session, col, select

from config.settings import trial_warning
from service.bootstrap import App
from service.db import alembic_config, schema_revision
from service.faults import RETRY_BOUND
from service.models import Lease, Message, OcrJob, Outbox, PollCursor

logger = logging.getLogger(__name__)

LOGIN_REFUSED = re.compile(r"^login to \S+ refused")
"""How `ImapMailbox` words a `MailboxLoginError`; ingest stores only the error's text."""

OUTBOX_STATUSES = ("pending", "unconfirmed", "sent", "failed", "suppressed")
METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class ServiceCounters:
    """What this process has done since it started, for the `*_total` metrics (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()

    def count(self, name: str, amount: int = 1) -> None:
        """Add `amount` to the counter `name`."""
        with self._lock:
            self._counts[name] += amount

    def snapshot(self) -> dict[str, int]:
        """A copy of every counter."""
        with self._lock:
            return dict(self._counts)


COUNTER_HELP = {
    "polls": "Polls this process ran (a poll skipped because another instance held it is not one).",
    "poll_errors": "Polls by this process that could not read the mailbox.",
    "messages_ingested": "Messages this process archived and processed.",
    "mail_sent": "Mails this process handed to the SMTP server.",
    "mail_failed": "Mails this process gave up on for good.",
    "imports": "Files this process imported from the watch folder.",
    "job_errors": "Scheduled jobs of this process that stopped on an unexpected error.",
    "scans_read": "Scanned PDFs this process read by OCR.",
    "scans_failed": "Scanned PDFs this process gave up reading (left to staff).",
}


@dataclass(frozen=True)
class CursorFacts:
    """One mailbox folder's poll record."""

    account: str
    folder: str
    last_poll_at: datetime | None
    last_success_at: datetime | None
    last_error: str | None
    failing_since: datetime | None


@dataclass
class HealthFacts:
    """Everything the health check and the metrics read from the database, in one pass."""

    database_error: str | None = None
    revision: str | None = None
    head: str | None = None
    cursors: list[CursorFacts] = field(default_factory=list)
    poll_in_progress: bool = False
    messages: dict[tuple[str, str], int] = field(default_factory=dict)
    outbox: dict[str, int] = field(default_factory=dict)
    outages: list[OutageFacts] = field(default_factory=list)
    ocr: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class OutageFacts:
    """Messages left pending by one kind of transient fault (database, storage, lock)."""

    fault: str
    messages: int
    retries: int
    since: datetime | None


def _first_line(error: BaseException) -> str:
    original = getattr(error, "orig", None) or error
    text = str(original).strip().splitlines()
    return text[0] if text else type(original).__name__


def schema_head(app: App) -> str | None:
    """The newest migration this build of intake ships."""
    return ScriptDirectory.from_config(alembic_config(app.engine)).get_current_head()


def gather_facts(app: App, account: str, folder: str) -> HealthFacts:
    """Read the schema revision, poll cursors, lease and counts; a dead database is a fact too."""
    facts = HealthFacts(head=schema_head(app))
    try:
        facts.revision = schema_revision(app.engine)
        if facts.revision is None:
            return facts
        with Session(app.engine) as session:
            facts.cursors = [
                CursorFacts(
                    account=row.account,
                    folder=row.folder,
                    last_poll_at=row.last_poll_at,
                    last_success_at=row.last_success_at,
                    last_error=row.last_error,
                    failing_since=row.failing_since,
                )
                for row in session.exec(select(PollCursor)).all()
            ]
            lease = session.get(Lease, f"poll:{account}/{folder}")
            facts.poll_in_progress = lease is not None and lease.expires_at > app.clock()
            for status, kind, count in session.exec(
                select(Message.status, Message.kind, sa.func.count()).group_by(
                    col(Message.status), col(Message.kind)
                )
            ).all():
                facts.messages[(status, kind or "unknown")] = int(count)
            for status, count in session.exec(
                select(Outbox.status, sa.func.count()).group_by(Outbox.status)
            ).all():
                facts.outbox[status] = int(count)
            for status, count in session.exec(
                select(OcrJob.status, sa.func.count()).group_by(OcrJob.status)
            ).all():
                facts.ocr[status] = int(count)
            facts.outages = [
                OutageFacts(fault=str(fault), messages=int(count), retries=int(most), since=since)
                for fault, count, most, since in session.execute(
                    sa.select(
                        col(Message.fault),
                        sa.func.count(),
                        sa.func.max(col(Message.retries)),
                        sa.func.min(col(Message.fault_since)),
                    )
                    .where(col(Message.status) == "pending", col(Message.fault).is_not(None))
                    .group_by(col(Message.fault))
                    .order_by(col(Message.fault))
                ).all()
            ]
    except sa.exc.SQLAlchemyError as error:
        facts.database_error = _first_line(error)
    return facts


def _ago(now: datetime, moment: datetime) -> str:
    seconds = max(0, int((now - moment).total_seconds()))
    return f"{moment.isoformat(timespec='seconds')} ({seconds} s ago)"


def _judge_poll(
    facts: HealthFacts, account: str, folder: str, *, now: datetime, allowed_gap: timedelta
) -> tuple[bool, str]:
    """Whether the configured mailbox is being read, and one line saying why."""
    where = f"mailbox {account}" + (f" folder {folder}" if folder else "")
    cursor = next(
        (row for row in facts.cursors if (row.account, row.folder) == (account, folder)), None
    )
    error = cursor.last_error if cursor else None
    if error and LOGIN_REFUSED.match(error):
        since = cursor.failing_since if cursor else None
        when = f" since {since.isoformat(timespec='seconds')}" if since else ""
        return False, f"FAIL {where}: login refused{when}: {error}"
    if cursor is None or cursor.last_success_at is None:
        if facts.poll_in_progress:
            return True, f"ok   {where}: first poll in progress"
        reason = f"last error: {error}" if error else "is `intake run` running?"
        return False, f"FAIL {where}: never read successfully ({reason})"
    age = now - cursor.last_success_at
    if age > allowed_gap:
        reason = f"; last error: {error}" if error else ""
        return False, (
            f"FAIL {where}: no successful poll since {_ago(now, cursor.last_success_at)}, "
            f"longer than mailbox.unreachable_after + schedule.poll_every "
            f"({int(allowed_gap.total_seconds())} s){reason}"
        )
    if error:
        return True, (
            f"ok   {where}: last successful poll {_ago(now, cursor.last_success_at)}; "
            f"the latest failed and will be retried: {error}"
        )
    return True, f"ok   {where}: last successful poll {_ago(now, cursor.last_success_at)}"


def _configured_folder(app: App) -> tuple[str, str]:
    mailbox = app.open_mailbox()  # builds the object only; nothing connects until `with`
    return mailbox.account, mailbox.folder


def evaluate(app: App, facts: HealthFacts, account: str, folder: str) -> tuple[bool, list[str]]:
    """Turn the facts into a verdict and the lines that explain it."""
    if facts.database_error is not None:
        return False, [f"FAIL database: unreachable: {facts.database_error}"]
    if facts.revision != facts.head:
        return False, [
            f"FAIL database: schema at revision {facts.revision or 'none'}, this intake expects "
            f"{facts.head}: run `intake db upgrade` (or upgrade intake if the database is newer)"
        ]
    lines = [f"ok   database: schema at revision {facts.revision} (newest)"]
    allowed_gap = app.settings.mailbox.unreachable_after + app.settings.schedule.poll_every
    polled, line = _judge_poll(facts, account, folder, now=app.clock(), allowed_gap=allowed_gap)
    lines.append(line)
    counts = ", ".join(f"{facts.outbox.get(status, 0)} {status}" for status in OUTBOX_STATUSES)
    failed = facts.outbox.get("failed", 0)
    advice = " (failed mail is listed in `intake status` and the digest)" if failed else ""
    lines.append(f"info outbox: {counts}{advice}")
    if facts.ocr:
        scans = ", ".join(
            f"{facts.ocr.get(status, 0)} {status}"
            for status in ("queued", "running", "done", "failed")
        )
        off = "" if app.settings.ocr.enabled else " (ocr.enabled is false: nothing is read)"
        lines.append(f"info ocr: scans {scans}{off}")
    lasting = False
    for outage in facts.outages:
        since = f" since {outage.since.isoformat(timespec='seconds')}" if outage.since else ""
        if outage.retries >= RETRY_BOUND:
            lasting = True
            lines.append(
                f"FAIL outage: {outage.fault}: {outage.messages} message(s) still pending{since} "
                f"after {outage.retries} tries; retried automatically, look at the {outage.fault}"
            )
        else:
            lines.append(
                f"warn outage: {outage.fault}: {outage.messages} message(s) pending{since}, "
                f"tried {outage.retries} time(s); retried automatically"
            )
    return polled and not lasting, lines


def check_health(app: App) -> tuple[bool, list[str]]:
    """(healthy, lines): database reachable and at the newest schema, mailbox read recently."""
    account, folder = _configured_folder(app)
    facts = gather_facts(app, account, folder)
    healthy, lines = evaluate(app, facts, account, folder)
    warning = trial_warning(app.settings)
    return healthy, [*lines, f"warning: {warning}"] if warning else lines


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(**pairs: str) -> str:
    return "{" + ",".join(f'{key}="{_label(value)}"' for key, value in pairs.items()) + "}"


def _family(lines: list[str], name: str, kind: str, text: str) -> None:
    lines.append(f"# HELP {name} {text}")
    lines.append(f"# TYPE {name} {kind}")


def metrics_text(app: App, counters: ServiceCounters | None = None) -> str:
    """The Prometheus text exposition (format 0.0.4) of the health facts and this process."""
    account, folder = _configured_folder(app)
    facts = gather_facts(app, account, folder)
    healthy, _ = evaluate(app, facts, account, folder)
    lines: list[str] = []
    _family(lines, "intake_up", "gauge", "1 when `intake health` would pass, else 0.")
    lines.append(f"intake_up {int(healthy)}")
    _family(lines, "intake_database_up", "gauge", "1 when the database answers.")
    lines.append(f"intake_database_up {int(facts.database_error is None)}")
    if facts.database_error is None:
        _family(
            lines,
            "intake_last_successful_poll_timestamp_seconds",
            "gauge",
            "Unix time of the last poll that read the mailbox folder.",
        )
        for row in facts.cursors:
            if row.last_success_at is not None:
                labels = _labels(account=row.account, folder=row.folder)
                value = row.last_success_at.timestamp()
                lines.append(f"intake_last_successful_poll_timestamp_seconds{labels} {value}")
        _family(
            lines, "intake_poll_failing", "gauge", "1 while the latest poll of a folder failed."
        )
        for row in facts.cursors:
            labels = _labels(account=row.account, folder=row.folder)
            lines.append(f"intake_poll_failing{labels} {int(row.last_error is not None)}")
        _family(lines, "intake_messages", "gauge", "Messages in the ledger by status and kind.")
        for (status, kind), count in sorted(facts.messages.items()):
            lines.append(f"intake_messages{_labels(status=status, kind=kind)} {count}")
        _family(
            lines,
            "intake_outage_messages",
            "gauge",
            "Messages left pending by a transient fault, by kind of fault.",
        )
        for outage in facts.outages:
            lines.append(f"intake_outage_messages{_labels(fault=outage.fault)} {outage.messages}")
        _family(lines, "intake_ocr_jobs", "gauge", "Scanned PDFs to read by OCR, by status.")
        for status in ("queued", "running", "done", "failed"):
            lines.append(f"intake_ocr_jobs{_labels(status=status)} {facts.ocr.get(status, 0)}")
        _family(lines, "intake_outbox", "gauge", "Outgoing mails by status.")
        for status in sorted({*OUTBOX_STATUSES, *facts.outbox}):
            lines.append(f"intake_outbox{_labels(status=status)} {facts.outbox.get(status, 0)}")
    done = counters.snapshot() if counters is not None else {}
    for name, text in COUNTER_HELP.items():
        _family(lines, f"intake_{name}_total", "counter", text)
        lines.append(f"intake_{name}_total {done.get(name, 0)}")
    return "\n".join(lines) + "\n"


class HealthServer(ThreadingHTTPServer):
    """`/healthz` (200 or 503, plain text) and `/metrics` (Prometheus text) on a thread."""

    daemon_threads = True

    def __init__(self, host: str, port: int, app: App, counters: ServiceCounters) -> None:
        super().__init__((host, port), _HealthRequestHandler)
        self.app = app
        self.counters = counters
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The port actually bound (useful when asked for port 0)."""
        return int(self.server_address[1])

    def start(self) -> HealthServer:
        """Serve on a daemon thread; return self."""
        self._thread = threading.Thread(
            target=self.serve_forever, name="intake-health", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._thread is not None:
            self.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self.server_close()


class _HealthRequestHandler(BaseHTTPRequestHandler):
    server_version = "intake-health"

    def do_GET(self) -> None:
        server = cast(HealthServer, self.server)
        path = self.path.split("?", 1)[0]
        try:
            if path == "/healthz":
                healthy, lines = check_health(server.app)
                head = "healthy" if healthy else "unhealthy"
                self._answer(200 if healthy else 503, "\n".join([head, *lines]) + "\n")
            elif path == "/metrics":
                self._answer(200, metrics_text(server.app, server.counters), METRICS_CONTENT_TYPE)
            else:
                self._answer(404, "not found: try /healthz or /metrics\n")
        except Exception as error:
            logger.exception("health endpoint %s failed", path)
            self._answer(500, f"internal error: {type(error).__name__}\n")

    def _answer(
        self, status: int, text: str, content_type: str = "text/plain; charset=utf-8"
    ) -> None:
        body = text.encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        logger.debug("health endpoint: " + format, *args)


def start_health_server(app: App, counters: ServiceCounters) -> HealthServer | None:
    """Start the endpoint on `health.host:health.port`; None when the port is 0 (off)."""
    settings = app.settings.health
    if settings.port == 0:
        return None
    return HealthServer(settings.host, settings.port, app, counters).start()
