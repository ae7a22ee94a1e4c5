"""Delivering the outbox to a real SMTP sink: retries with back-off, failures staff see,
dropped connections, one connection per batch, STARTTLS+AUTH from settings, and two
concurrent deliveries on PostgreSQL that never send a row twice."""

from __future__ import annotations

import re
import threading
from datetime import timedelta

import pytest
from sqlmodel import Session, select

from config.settings import Settings
from notifications.transport import SmtpTransport
from service.bootstrap import App, build_transport
from service.digest import render_digest
from service.leases import held_lease
from service.models import Outbox, Suppression
from service.outbox import deliver
from tests.support.apps import MovableClock, make_app, register_of
from tests.support.intake_process import local_config, run_intake
from tests.support.mailmaker import at
from tests.support.outbox_mail import queue_results
from tests.support.services import free_port

pytestmark = pytest.mark.integration


def outbox_rows(app: App) -> list[Outbox]:
    with Session(app.engine) as session:
        return list(session.exec(select(Outbox).order_by(Outbox.id)).all())


def test_a_451_is_retried_after_the_back_off_and_then_delivered(db_url, tmp_path, smtp_sink):
    clock = MovableClock(at(20))
    app = make_app(db_url, tmp_path, transport=smtp_sink.transport(), clock=clock)
    queue_results(app, 1)
    smtp_sink.script(["451 4.3.0 try again later"])

    first = deliver(app)
    [row] = outbox_rows(app)
    assert (first.sent, first.retried) == (0, 1)
    assert row.status == "pending" and row.attempts == 1 and "451" in (row.last_error or "")
    assert row.next_attempt_at == at(20) + app.settings.smtp.retry_base

    assert deliver(app).sent == 0  # not yet due: nothing is tried
    assert smtp_sink.received == [] and smtp_sink.refused == ["451 4.3.0 try again later"]

    clock.now = at(20) + app.settings.smtp.retry_base
    assert deliver(app).sent == 1
    [row] = outbox_rows(app)
    assert row.status == "sent" and row.attempts == 2
    assert len(smtp_sink.received) == 1
    app.engine.dispose()


def test_the_back_off_doubles_with_each_temporary_refusal(db_url, tmp_path, smtp_sink):
    clock = MovableClock(at(20))
    app = make_app(db_url, tmp_path, transport=smtp_sink.transport(), clock=clock)
    queue_results(app, 1)
    smtp_sink.script(["451 busy"] * 3)
    waits = []
    for _ in range(3):
        deliver(app)
        [row] = outbox_rows(app)
        waits.append(row.next_attempt_at - clock.now)
        clock.now = row.next_attempt_at
    base = app.settings.smtp.retry_base
    assert waits == [base, base * 2, base * 4]
    assert deliver(app).sent == 1
    app.engine.dispose()


def test_a_550_fails_for_good_and_shows_in_the_digest_and_intake_status(
    db_url, tmp_path, smtp_sink
):
    app = make_app(db_url, tmp_path, transport=smtp_sink.transport())
    queue_results(app, 2)
    smtp_sink.script(["550 5.1.1 <applicant1@example.cn>: no such user"])

    report = deliver(app)

    assert (report.sent, report.failed) == (1, 1)
    statuses = {mail["to"][0]: mail["status"] for mail in register_of(app)["outbox"]}
    assert statuses == {"applicant1@example.cn": "failed", "applicant2@example.cn": "sent"}
    assert deliver(app).sent == 0  # a failed mail is never tried again
    digest = render_digest(app)
    failed_section = digest.split("四、发送失败的邮件（1封）")[1].split("五、")[0]
    assert "applicant1@example.cn" in failed_section and "拒收（代码550）" in failed_section

    config = local_config(tmp_path, db_url)
    status = run_intake(config, "status", env={"COLUMNS": "200"}, check=True)
    assert "邮件发送失败" in status.stdout and "applicant1@example.cn" in status.stdout
    assert re.search(r"发出邮件\s+发送失败\s+1封", status.stdout), status.stdout
    app.engine.dispose()


def test_a_connection_dropped_mid_batch_delivers_the_rest_in_the_same_run(
    db_url, tmp_path, smtp_sink_factory
):
    sink = smtp_sink_factory(drop_after=3)
    app = make_app(db_url, tmp_path, transport=sink.transport())
    queue_results(app, 7)

    report = deliver(app)

    assert report.sent == 7
    assert sorted(sink.arrivals().values()) == [1] * 7
    assert [item.connection for item in sink.received] == [1, 1, 1, 2, 2, 2, 3]
    app.engine.dispose()


def test_a_server_that_is_down_stops_the_run_and_the_next_run_delivers_everything(
    db_url, tmp_path, smtp_sink
):
    clock = MovableClock(at(20))
    down = SmtpTransport(
        "127.0.0.1", free_port(), security="plain", username=None, password=None, timeout=2.0
    )
    app = make_app(db_url, tmp_path, transport=down, clock=clock)
    queue_results(app, 5)

    report = deliver(app)

    assert (report.sent, report.retried, report.failed) == (0, 1, 0)
    rows = outbox_rows(app)
    assert [row.status for row in rows] == ["pending"] * 5
    assert [row.attempts for row in rows] == [0] * 5  # an outage is not the mail's fault
    assert "cannot connect" in (rows[0].last_error or "")

    app.transport = smtp_sink.transport()
    clock.now = at(21)
    assert deliver(app).sent == 5
    assert len(smtp_sink.received) == 5
    app.engine.dispose()


def test_one_connection_carries_a_whole_batch(db_url, tmp_path, smtp_sink):
    app = make_app(db_url, tmp_path, transport=smtp_sink.transport())
    queue_results(app, 12)

    assert deliver(app).sent == 12
    assert smtp_sink.connections == 1
    assert {item.connection for item in smtp_sink.received} == {1}
    app.engine.dispose()


def test_starttls_and_login_work_through_the_transport_built_from_settings(
    db_url, tmp_path, smtp_sink_factory, smtp_sink_certificate
):
    sink = smtp_sink_factory(security="starttls", users={"cases@cace.example": "pw-2025"})
    settings = Settings(
        smtp={
            "kind": "smtp",
            "host": sink.host,
            "port": sink.port,
            "security": "starttls",
            "username": "cases@cace.example",
            "password": "pw-2025",
            "ca_file": smtp_sink_certificate.cert_path,
        }
    )
    app = make_app(db_url, tmp_path, transport=build_transport(settings))
    queue_results(app, 3)

    assert deliver(app).sent == 3
    assert sink.logins == ["cases@cace.example"]
    assert len(sink.received) == 3 and sink.connections == 1
    app.engine.dispose()


def test_mail_to_an_address_that_bounced_after_queueing_is_held_back_at_send_time(
    db_url, tmp_path, smtp_sink
):
    app = make_app(db_url, tmp_path, transport=smtp_sink.transport())
    queue_results(app, 2)
    with Session(app.engine) as session:
        session.add(
            Suppression(
                address="applicant1@example.cn", reason="bounced (5.1.1)", created_at=at(20)
            )
        )
        session.commit()

    report = deliver(app)

    assert (report.sent, report.suppressed) == (1, 1)
    assert [item.rcpt_tos for item in smtp_sink.received] == [["applicant2@example.cn"]]
    statuses = [mail["status"] for mail in register_of(app)["outbox"]]
    assert statuses == ["suppressed", "sent"]
    app.engine.dispose()


def test_two_concurrent_deliveries_on_postgresql_never_send_a_row_twice(
    postgres_url, tmp_path, smtp_sink
):
    app = make_app(postgres_url, tmp_path, transport=smtp_sink.transport())
    queue_results(app, 120)
    reports = []

    def run() -> None:
        reports.append(deliver(app))

    workers = [threading.Thread(target=run) for _ in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)

    counts = smtp_sink.arrivals()
    assert len(counts) == 120 and max(counts.values()) == 1
    assert sum(report.sent for report in reports) == 120
    assert sum(1 for report in reports if report.sent) >= 2  # they really ran side by side
    assert {row.status for row in outbox_rows(app)} == {"sent"}
    app.engine.dispose()


def test_a_mail_queued_again_under_the_same_key_is_sent_once(db_url, tmp_path, smtp_sink):
    app = make_app(db_url, tmp_path, transport=smtp_sink.transport())
    queue_results(app, 3)
    queue_results(app, 3)
    deliver(app)
    queue_results(app, 3)

    assert deliver(app).sent == 0
    assert sorted(smtp_sink.arrivals().values()) == [1, 1, 1]
    assert len(outbox_rows(app)) == 3
    assert all(row.sent_at is not None for row in outbox_rows(app))
    app.engine.dispose()


def test_on_sqlite_a_second_delivery_while_one_runs_sends_nothing(sqlite_url, tmp_path, smtp_sink):
    app = make_app(sqlite_url, tmp_path, transport=smtp_sink.transport())
    queue_results(app, 2)
    with held_lease(app.engine, "deliver", clock=app.clock, ttl=timedelta(minutes=5)):
        report = deliver(app)
    assert report.skipped_busy and report.sent == 0 and smtp_sink.received == []
    assert deliver(app).sent == 2
    app.engine.dispose()
