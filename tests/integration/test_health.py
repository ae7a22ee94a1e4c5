"""`intake health`, `/healthz` and `/metrics`: what an operator or Docker sees."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Self

import pytest

from config.errors import DeliveryError, MailboxError
from config.settings import Settings
from notifications.transport import RecordingTransport
from service.bootstrap import bootstrap
from service.health import HealthServer, ServiceCounters, check_health
from service.ingest import poll
from service.mailbox import FetchedMessage, FolderState, RemoteMessage
from service.outbox import deliver
from tests.support.apps import (
    EXPECTED_RECEIPTS,
    MovableClock,
    append_samples,
    imap_mailbox,
    make_app,
)
from tests.support.intake_process import http_get, metric_value, run_intake, service_config

pytestmark = pytest.mark.integration

SAMPLE = re.compile(r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-z_]+="([^"\\]|\\.)*",?)*\})? -?[0-9.e+]+$')
COMMENT = re.compile(r"^# (HELP|TYPE) [a-zA-Z_:][a-zA-Z0-9_:]* .+$")


class UnreachableMailbox:
    """The configured mailbox's name, but the server is down: every use of it fails."""

    stable_uids = True

    def __init__(self, account: str, folder: str) -> None:
        self.account = account
        self.folder = folder

    def _refused(self) -> MailboxError:
        return MailboxError(
            f"could not connect to {self.account}: Connection refused — the next poll will retry"
        )

    def __enter__(self) -> Self:
        raise self._refused()

    def __exit__(self, *exc: object) -> None:
        return None

    def state(self) -> FolderState:
        raise self._refused()

    def list_newer(self, above_uid: int, *, since: date | None = None) -> list[RemoteMessage]:
        raise self._refused()

    def fetch(self, uids: Sequence[int], *, batch_size: int = 50) -> Iterator[FetchedMessage]:
        raise self._refused()

    def fetch_headers(self, uids: Sequence[int]) -> dict[int, bytes]:
        raise self._refused()

    def apply_after(self, uids: Sequence[int], action: str) -> None:
        raise self._refused()

    def wait_for_new(self, timeout: float) -> bool:
        raise self._refused()


def labelled_value(metrics: str, name: str, **labels: str) -> float | None:
    """The value of the sample `name{labels}` in Prometheus text, if present."""
    wanted = "{" + ",".join(f'{key}="{value}"' for key, value in labels.items()) + "}"
    for line in metrics.splitlines():
        if line.startswith(f"{name}{wanted} "):
            return float(line.rsplit(" ", 1)[1])
    return None


# -- `intake health` as Docker's HEALTHCHECK runs it ------------------------------------


def test_intake_health_exits_0_after_a_good_poll(tmp_path, dovecot, smtp_sink, postgres_url):
    username, password = dovecot.user("healthy")
    append_samples(dovecot, username)
    config = service_config(
        tmp_path,
        database_url=postgres_url,
        dovecot=dovecot,
        username=username,
        password=password,
        smtp_sink=smtp_sink,
    )
    assert run_intake(config, "db", "upgrade", cwd=tmp_path).returncode == 0
    assert run_intake(config, "poll", "--once", cwd=tmp_path).returncode == 0

    health = run_intake(config, "health", cwd=tmp_path)

    assert health.returncode == 0, health.stdout + health.stderr
    assert f"ok   mailbox imap://{username}@" in health.stdout
    assert "last successful poll" in health.stdout


def test_intake_health_exits_1_when_the_mailbox_login_fails(
    tmp_path, dovecot, smtp_sink, postgres_url
):
    username, _ = dovecot.user("refused")
    config = service_config(
        tmp_path,
        database_url=postgres_url,
        dovecot=dovecot,
        username=username,
        password="not-the-password",
        smtp_sink=smtp_sink,
    )
    assert run_intake(config, "db", "upgrade", cwd=tmp_path).returncode == 0
    assert run_intake(config, "poll", "--once", cwd=tmp_path).returncode == 1

    health = run_intake(config, "health", cwd=tmp_path)

    assert health.returncode == 1, health.stdout + health.stderr
    assert "login refused" in health.stdout
    assert "not-the-password" not in health.stdout + health.stderr


# -- the verdict ---------------------------------------------------------------------------


def test_health_turns_unhealthy_when_no_poll_succeeded_for_longer_than_unreachable_after(
    db_url, tmp_path
):
    clock = MovableClock(datetime(2025, 7, 20, 9, 0, tzinfo=UTC))
    app = make_app(db_url, tmp_path, clock=clock, schedule={"poll_every": "5m"})
    assert app.settings.mailbox.unreachable_after == timedelta(minutes=30)  # the default
    assert poll(app).ok
    clock.now += timedelta(minutes=34)
    healthy_soon_after, _ = check_health(app)
    clock.now += timedelta(minutes=2)

    healthy_later, lines = check_health(app)

    assert healthy_soon_after
    assert not healthy_later
    assert any(line.startswith("FAIL mailbox") and "no successful poll" in line for line in lines)
    app.engine.dispose()


def test_a_failed_poll_within_unreachable_after_is_reported_but_still_healthy(sqlite_url, tmp_path):
    clock = MovableClock(datetime(2025, 7, 20, 9, 0, tzinfo=UTC))
    app = make_app(sqlite_url, tmp_path, clock=clock)
    assert poll(app).ok
    configured = app.open_mailbox()
    app.open_mailbox = lambda: UnreachableMailbox(configured.account, configured.folder)
    clock.now += timedelta(minutes=5)
    assert not poll(app).ok

    healthy, lines = check_health(app)

    assert healthy
    assert any("the latest failed" in line and "Connection refused" in line for line in lines)
    app.engine.dispose()


def test_health_before_the_first_poll_is_unhealthy_and_says_why(sqlite_url, tmp_path):
    app = make_app(sqlite_url, tmp_path)

    healthy, lines = check_health(app)

    assert not healthy
    assert any("never read successfully" in line for line in lines)
    app.engine.dispose()


def test_health_asks_for_intake_db_upgrade_when_the_schema_is_missing(tmp_path: Path) -> None:
    app = bootstrap(
        Settings(
            database={"url": f"sqlite:///{tmp_path / 'empty.db'}"},
            storage={"path": tmp_path / "archive"},
        )
    )

    healthy, lines = check_health(app)

    assert not healthy
    assert "intake db upgrade" in lines[0]
    app.engine.dispose()


def test_outbox_failures_are_counted_in_the_health_lines(sqlite_url, tmp_path):
    transport = RecordingTransport(
        outcomes=[DeliveryError("550 mailbox unavailable", permanent=True)]
    )
    app = make_app(sqlite_url, tmp_path, transport=transport)
    poll(app)
    deliver(app)

    healthy, lines = check_health(app)

    assert healthy
    outbox = next(line for line in lines if line.startswith("info outbox"))
    assert "1 failed" in outbox and f"{len(EXPECTED_RECEIPTS) - 1} sent" in outbox
    app.engine.dispose()


# -- the HTTP endpoint ---------------------------------------------------------------------


def test_metrics_serve_prometheus_text_with_the_ledger_outbox_and_poll_time(db_url, tmp_path):
    transport = RecordingTransport()
    clock = MovableClock(datetime(2025, 7, 20, 9, 0, tzinfo=UTC))
    app = make_app(db_url, tmp_path, transport=transport, clock=clock)
    poll(app)
    sent = deliver(app).sent
    counters = ServiceCounters()
    counters.count("polls")
    counters.count("mail_sent", sent)
    server = HealthServer("127.0.0.1", 0, app, counters).start()
    try:
        status, content_type, metrics = http_get(f"http://127.0.0.1:{server.port}/metrics")
        health_status, _, health_text = http_get(f"http://127.0.0.1:{server.port}/healthz")
        missing_status, _, _ = http_get(f"http://127.0.0.1:{server.port}/nothing-here")
    finally:
        server.stop()

    assert status == 200 and content_type.startswith("text/plain; version=0.0.4")
    assert all(SAMPLE.match(line) or COMMENT.match(line) for line in metrics.splitlines()), metrics
    mailbox = app.open_mailbox()
    assert labelled_value(
        metrics,
        "intake_last_successful_poll_timestamp_seconds",
        account=mailbox.account,
        folder=mailbox.folder,
    ) == pytest.approx(clock.now.timestamp())
    messages = [
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("intake_messages{")
    ]
    assert sum(messages) == len(EXPECTED_RECEIPTS)
    assert labelled_value(metrics, "intake_messages", status="processed", kind="recommendation")
    assert labelled_value(metrics, "intake_outbox", status="sent") == sent
    assert labelled_value(metrics, "intake_outbox", status="failed") == 0
    assert metric_value(metrics, "intake_polls_total") == 1
    assert metric_value(metrics, "intake_mail_sent_total") == sent
    assert metric_value(metrics, "intake_poll_errors_total") == 0
    assert metric_value(metrics, "intake_up") == 1
    assert health_status == 200 and health_text.startswith("healthy\n")
    assert missing_status == 404
    app.engine.dispose()


def test_healthz_answers_503_with_the_reason_when_the_mailbox_refuses_the_login(
    postgres_url, tmp_path, dovecot
):
    username, _ = dovecot.user("locked-out")
    app = make_app(
        postgres_url, tmp_path, open_mailbox=imap_mailbox(dovecot, username, "wrong-password")
    )
    assert not poll(app).ok
    server = HealthServer("127.0.0.1", 0, app, ServiceCounters()).start()
    try:
        status, _, text = http_get(f"http://127.0.0.1:{server.port}/healthz")
        _, _, metrics = http_get(f"http://127.0.0.1:{server.port}/metrics")
    finally:
        server.stop()

    assert status == 503
    assert text.startswith("unhealthy\n") and "login refused" in text
    assert metric_value(metrics, "intake_up") == 0
    account = app.open_mailbox().account
    assert labelled_value(metrics, "intake_poll_failing", account=account, folder="INBOX") == 1
    app.engine.dispose()
