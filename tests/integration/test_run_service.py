"""`intake run` as a real process: real Dovecot, a real SMTP sink, PostgreSQL or SQLite.

It answers the sample mail within a few poll intervals, imports the watch folder once even
across a restart, polls on IMAP IDLE, and stops with exit 0 on SIGTERM or SIGINT.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from config.settings import SAMPLES
from notifications.transport import RecordingTransport
from service.db import create_db_engine
from service.health import ServiceCounters
from service.scheduler import Service, build_scheduler, import_watch_folder, run_service
from tests.support.apps import TRUTH, append_samples, make_app
from tests.support.services import free_port

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
STOP_TIMEOUT = 30.0
EXPECTED_RECEIPTS = {
    message["message_id"]: message["sender"]
    for message in TRUTH["messages"]
    if message["unit_receipt"] is True
}
"""In-Reply-To of each unit receipt the samples must produce -> the address it goes to."""


# -- helpers shared with test_health.py and test_two_instances.py -------------------------


def write_config(path: Path, sections: dict[str, dict[str, Any]]) -> Path:
    """A TOML settings file from plain sections (strings, numbers, booleans, lists)."""
    lines: list[str] = []
    for section, values in sections.items():
        lines.append(f"[{section}]")
        lines.extend(
            f"{key} = {json.dumps(value, ensure_ascii=False)}" for key, value in values.items()
        )
        lines.append("")
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def service_config(
    workdir: Path,
    *,
    database_url: str,
    dovecot: Any,
    username: str,
    password: str,
    smtp_sink: Any,
    archive: Path | None = None,
    **extra: dict[str, Any],
) -> Path:
    """Settings for `intake run` against the Dovecot fixture (plain, loopback) and the sink."""
    sections: dict[str, dict[str, Any]] = {
        "database": {"url": database_url},
        "storage": {"path": str(archive or workdir / "archive")},
        "mailbox": {
            "kind": "imap",
            "host": dovecot.host,
            "port": dovecot.port,
            "security": "plain",
            "username": username,
            "password": password,
            "timeout": "10s",
        },
        "smtp": {
            "kind": "smtp",
            "host": smtp_sink.host,
            "port": smtp_sink.port,
            "security": "plain",
            "timeout": "10s",
        },
        "schedule": {"poll_every": "1s", "deliver_every": "1s"},
    }
    for section, values in extra.items():
        sections.setdefault(section, {}).update(values)
    return write_config(workdir / "intake.toml", sections)


def intake_command(config: Path, *arguments: str) -> list[str]:
    """`intake --config FILE ARGUMENTS…` as this interpreter runs it."""
    return [sys.executable, "-m", "service", "--config", str(config), *arguments]


def child_environment() -> dict[str, str]:
    """This environment without INTAKE_* overrides, with the repository importable."""
    environment = {
        name: value for name, value in os.environ.items() if not name.startswith("INTAKE_")
    }
    environment["PYTHONPATH"] = str(REPO)
    return environment


def run_intake(config: Path, *arguments: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run one `intake` command to completion and return what it printed."""
    return subprocess.run(
        intake_command(config, *arguments),
        cwd=cwd,
        env=child_environment(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def wait_until(
    condition: Callable[[], bool],
    *,
    timeout: float,
    what: str,
    evidence: Callable[[], str] | None = None,
) -> None:
    """Check `condition` every 0.2 s; fail naming `what`, showing `evidence`, if it never holds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    shown = f"\n{evidence()}" if evidence else ""
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}{shown}")


class RunningService:
    """One `intake run` child process; stderr goes to a file the test can read."""

    def __init__(self, config: Path, *, cwd: Path, name: str = "intake") -> None:
        self.log_path = cwd / f"{name}.stderr.log"
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            intake_command(config, "run"),
            cwd=cwd,
            env=child_environment(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=self._log,
        )

    def log(self) -> str:
        """Everything the service wrote to stderr so far."""
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> int:
        """Send `sig` and return the exit status once the process has ended."""
        self.process.send_signal(sig)
        try:
            return self.process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            pytest.fail(f"intake run did not stop within {STOP_TIMEOUT:.0f} s of {sig.name}")

    def close(self) -> None:
        """Kill the process if a test left it running; close the log."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._log.close()


@contextmanager
def service_starter() -> Iterator[Callable[..., RunningService]]:
    """Start `intake run` processes; any still running at the end are killed."""
    started: list[RunningService] = []

    def start(config: Path, *, cwd: Path, name: str = "intake") -> RunningService:
        service = RunningService(config, cwd=cwd, name=name)
        started.append(service)
        return service

    try:
        yield start
    finally:
        for service in started:
            service.close()


@pytest.fixture
def start_service() -> Iterator[Callable[..., RunningService]]:
    """Start `intake run` processes; any still running at the end are killed."""
    with service_starter() as start:
        yield start


def unit_receipts_at(sink: Any) -> Counter[str]:
    """How many mails the sink holds in reply to each inbound Message-ID."""
    return Counter(in_reply_to(item) for item in sink.received if item.message["In-Reply-To"])


def in_reply_to(item: Any) -> str:
    """The In-Reply-To id of a received mail (a long one arrives folded onto its own line)."""
    return str(item.message["In-Reply-To"] or "").strip()


def sink_summary(sink: Any) -> str:
    """Who got what at the sink, for failure messages."""
    return "\n".join(
        f"{item.rcpt_tos} {item.message['Subject']} in reply to {item.message['In-Reply-To']}"
        for item in sink.received
    )


def http_get(url: str) -> tuple[int, str, str]:
    """(status, content type, body) of a GET, 4xx/5xx included."""
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            return answer.status, answer.headers["Content-Type"], answer.read().decode("utf-8")
    except urllib.error.HTTPError as error:
        return error.code, error.headers["Content-Type"], error.read().decode("utf-8")


def metric_value(metrics: str, name: str) -> float | None:
    """The value of an unlabelled sample in Prometheus text, if present."""
    for line in metrics.splitlines():
        if line.startswith(f"{name} "):
            return float(line.split()[1])
    return None


def counted_rows(database_url: str, table: str) -> int:
    """Rows in `table`, read with a separate engine."""
    engine = create_db_engine(database_url)
    try:
        with engine.connect() as connection:
            return int(connection.execute(sa.text(f"select count(*) from {table}")).scalar_one())
    finally:
        engine.dispose()


# -- the service as a process -------------------------------------------------------------


def test_intake_run_answers_the_sample_mail_and_stops_with_0_on_sigterm(
    tmp_path, dovecot, smtp_sink, postgres_url, start_service
):
    username, password = dovecot.user("run")
    watch = tmp_path / "watch"
    watch.mkdir()
    shutil.copy(SAMPLES / "submissions.xlsx", watch / "submissions.xlsx")
    health_port = free_port()
    config = service_config(
        tmp_path,
        database_url=postgres_url,
        dovecot=dovecot,
        username=username,
        password=password,
        smtp_sink=smtp_sink,
        schedule={"watch_folder": str(watch)},
        health={"port": health_port},
    )
    assert run_intake(config, "db", "upgrade", cwd=tmp_path).returncode == 0
    service = start_service(config, cwd=tmp_path)
    wait_until(lambda: "event=service_starting" in service.log(), timeout=30, what="start")
    appended = time.monotonic()
    append_samples(dovecot, username)

    wait_until(
        lambda: set(EXPECTED_RECEIPTS) <= set(unit_receipts_at(smtp_sink)),
        timeout=30,
        what="unit receipts at the sink",
        evidence=lambda: f"{sink_summary(smtp_sink)}\n{service.log()[-4000:]}",
    )
    print(f"receipts at the sink {time.monotonic() - appended:.1f} s after the APPEND")
    status, _, text = http_get(f"http://127.0.0.1:{health_port}/healthz")
    stopping = time.monotonic()
    exit_status = service.stop(signal.SIGTERM)
    print(f"stopped {time.monotonic() - stopping:.1f} s after SIGTERM")

    log = service.log()
    assert exit_status == 0, log[-3000:]
    receipts = unit_receipts_at(smtp_sink)
    assert all(receipts[message_id] == 1 for message_id in EXPECTED_RECEIPTS)
    for item in smtp_sink.received:
        if in_reply_to(item) in EXPECTED_RECEIPTS:
            assert item.rcpt_tos == [EXPECTED_RECEIPTS[in_reply_to(item)]]
    assert status == 200 and text.startswith("healthy"), text
    assert "event=submissions_imported file=submissions.xlsx" in log
    assert "event=service_stopped" in log
    assert password not in log


def test_a_restarted_service_imports_nothing_twice_and_sends_nothing_twice(
    tmp_path, dovecot, smtp_sink, postgres_url, start_service
):
    username, password = dovecot.user("restart")
    watch = tmp_path / "watch"
    watch.mkdir()
    shutil.copy(SAMPLES / "submissions.xlsx", watch / "submissions.xlsx")
    health_port = free_port()
    config = service_config(
        tmp_path,
        database_url=postgres_url,
        dovecot=dovecot,
        username=username,
        password=password,
        smtp_sink=smtp_sink,
        schedule={"watch_folder": str(watch)},
        health={"port": health_port},
    )
    assert run_intake(config, "db", "upgrade", cwd=tmp_path).returncode == 0
    append_samples(dovecot, username)
    first = start_service(config, cwd=tmp_path, name="first")
    wait_until(
        lambda: (
            set(EXPECTED_RECEIPTS) <= set(unit_receipts_at(smtp_sink))
            and "event=submissions_imported" in first.log()
        ),
        timeout=30,
        what="the first run's receipts and import",
    )
    wait_until(
        lambda: (
            'intake_outbox{status="pending"} 0'
            in http_get(f"http://127.0.0.1:{health_port}/metrics")[2]
        ),
        timeout=30,
        what="an empty outbox",
    )
    assert first.stop() == 0
    sent_before = len(smtp_sink.received)
    imports_before = counted_rows(postgres_url, "import_run")

    second = start_service(config, cwd=tmp_path, name="second")
    metrics_url = f"http://127.0.0.1:{health_port}/metrics"

    def second_has_polled_three_times() -> bool:
        try:
            polls = metric_value(http_get(metrics_url)[2], "intake_polls_total")
        except OSError:
            return False
        return polls is not None and polls >= 3

    wait_until(second_has_polled_three_times, timeout=30, what="three polls by the restart")
    assert second.stop() == 0

    assert len(smtp_sink.received) == sent_before
    assert counted_rows(postgres_url, "import_run") == imports_before == 1
    assert "event=submissions_imported" not in second.log()


def test_with_idle_new_mail_is_read_long_before_the_next_scheduled_poll(
    tmp_path, dovecot, smtp_sink, postgres_url, start_service
):
    username, password = dovecot.user("idle")
    config = service_config(
        tmp_path,
        database_url=postgres_url,
        dovecot=dovecot,
        username=username,
        password=password,
        smtp_sink=smtp_sink,
        mailbox={"idle": True},
        schedule={"poll_every": "10m"},
    )
    assert run_intake(config, "db", "upgrade", cwd=tmp_path).returncode == 0
    service = start_service(config, cwd=tmp_path)
    wait_until(
        lambda: "event=service_starting" in service.log(), timeout=30, what="the service to start"
    )
    time.sleep(2)  # the start-up poll finds the folder empty; IDLE is waiting after it

    appended = time.monotonic()
    append_samples(dovecot, username)
    wait_until(
        lambda: set(EXPECTED_RECEIPTS) <= set(unit_receipts_at(smtp_sink)),
        timeout=60,
        what="receipts triggered by IDLE",
        evidence=lambda: service.log()[-4000:],
    )
    answered_within = time.monotonic() - appended
    print(f"receipts at the sink {answered_within:.1f} s after the APPEND (IDLE)")
    assert service.stop() == 0
    assert answered_within < 60  # the scheduled poll would come after 10 minutes


def test_on_sqlite_intake_run_warns_it_must_be_the_only_process_and_sigint_stops_it(
    tmp_path, start_service
):
    outgoing = tmp_path / "outgoing"
    config = write_config(
        tmp_path / "intake.toml",
        {
            "database": {"url": f"sqlite:///{tmp_path / 'intake.db'}"},
            "storage": {"path": str(tmp_path / "archive")},
            "smtp": {"kind": "file", "path": str(outgoing)},
            "schedule": {"poll_every": "1s", "deliver_every": "1s"},
        },
    )
    assert run_intake(config, "db", "upgrade", cwd=tmp_path).returncode == 0
    service = start_service(config, cwd=tmp_path)
    wait_until(
        lambda: outgoing.is_dir() and len(list(outgoing.glob("*.eml"))) == len(EXPECTED_RECEIPTS),
        timeout=30,
        what=f"receipts written to {outgoing}",
    )
    assert service.stop(signal.SIGINT) == 0
    log = service.log()
    warning = next(line for line in log.splitlines() if "event=single_process_only" in line)
    assert "level=warning" in warning and "only ONE `intake run`" in warning


# -- the same service in this process ---------------------------------------------------


def test_run_service_returns_0_soon_after_its_stop_event_is_set(sqlite_url, tmp_path):
    transport = RecordingTransport()
    app = make_app(
        sqlite_url,
        tmp_path,
        transport=transport,
        schedule={"poll_every": "1s", "deliver_every": "1s"},
    )
    stop = threading.Event()
    result: list[int] = []
    runner = threading.Thread(target=lambda: result.append(run_service(app, stop=stop)))
    runner.start()
    try:
        wait_until(
            lambda: len(transport.sent) == len(EXPECTED_RECEIPTS),
            timeout=30,
            what="the receipts of the sample mailbox",
        )
    finally:
        stop.set()
        runner.join(timeout=STOP_TIMEOUT)
    assert not runner.is_alive()
    assert result == [0]


def test_the_watch_folder_imports_each_export_once_and_waits_for_files_still_being_written(
    db_url, tmp_path
):
    app = make_app(db_url, tmp_path)
    watch = tmp_path / "watch"
    watch.mkdir()
    export = watch / "submissions.xlsx"
    shutil.copy(SAMPLES / "submissions.xlsx", export)
    (watch / "notes.txt").write_text("not an export", encoding="utf-8")
    (watch / "~$submissions.xlsx").write_bytes(b"an Office lock file")
    settled = datetime.now(UTC) + timedelta(minutes=1)

    assert (
        import_watch_folder(app, watch, settled_before=datetime.now(UTC) - timedelta(hours=1)) == []
    )
    first = import_watch_folder(app, watch, settled_before=settled)
    again = import_watch_folder(app, watch, settled_before=settled)

    assert [item.path.name for item in first] == ["submissions.xlsx"]
    assert first[0].report is not None and first[0].report.added
    assert again == []
    app.engine.dispose()


def test_an_unreadable_export_is_reported_once_and_tried_again_only_when_it_changes(
    sqlite_url, tmp_path
):
    app = make_app(sqlite_url, tmp_path)
    watch = tmp_path / "watch"
    watch.mkdir()
    broken = watch / "export.xlsx"
    broken.write_bytes(b"this is not a workbook")
    settled = datetime.now(UTC) + timedelta(minutes=1)
    unreadable: set[str] = set()

    first = import_watch_folder(app, watch, settled_before=settled, unreadable=unreadable)
    again = import_watch_folder(app, watch, settled_before=settled, unreadable=unreadable)
    shutil.copy(SAMPLES / "submissions.xlsx", broken)
    fixed = import_watch_folder(app, watch, settled_before=settled, unreadable=unreadable)

    assert len(first) == 1 and first[0].report is None and first[0].error
    assert again == []
    assert len(fixed) == 1 and fixed[0].report is not None
    app.engine.dispose()


def test_the_digest_goes_out_at_digest_at_in_the_campaign_time_zone_and_once_a_day(
    sqlite_url, tmp_path
):
    transport = RecordingTransport()
    app = make_app(
        sqlite_url,
        tmp_path,
        transport=transport,
        campaign={"timezone": "Asia/Shanghai", "staff": ["staff@cace.example"]},
        schedule={"digest_at": "08:30"},
    )
    service = Service(app, threading.Event(), ServiceCounters())
    digest = build_scheduler(service).get_job("digest")
    shanghai = app.settings.campaign.zone
    after_today_s = datetime(2025, 7, 20, 9, 0, tzinfo=shanghai)

    next_digest = digest.trigger.get_next_fire_time(None, after_today_s)
    service.queue_digest_and_deliver()
    service.queue_digest_and_deliver()

    assert next_digest == datetime(2025, 7, 21, 8, 30, tzinfo=shanghai)
    assert [mail.recipients for mail in transport.sent] == [["staff@cace.example"]]
    app.engine.dispose()
