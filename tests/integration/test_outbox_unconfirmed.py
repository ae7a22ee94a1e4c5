"""A mail the SMTP server took without our hearing its reply: counted, resent at most once
after a delay with the same Message-ID, then failed for a person; the rest of the queue goes
out meanwhile. Real aiosmtpd sinks that drop the connection after DATA, or answer too late."""

from __future__ import annotations

import pytest
from sqlmodel import Session, select

from notifications.transport import SmtpTransport
from service.bootstrap import App
from service.digest import render_digest
from service.models import Outbox
from service.outbox import deliver
from tests.support.apps import MovableClock, make_app, register_of
from tests.support.mailmaker import at
from tests.support.outbox_mail import queue_results
from tests.support.smtp_sink import SmtpSink

pytestmark = pytest.mark.integration

LATE_TIMEOUT = 3.0
"""The client's reply timeout for the late-answering sink: the reply comes only after the
client gave up, so this bounds the test's length, not a race."""


def rows(app: App) -> list[Outbox]:
    with Session(app.engine) as session:
        return list(session.exec(select(Outbox).order_by(Outbox.id)).all())


def sink_transport(sink: SmtpSink, *, timeout: float = 10.0) -> SmtpTransport:
    return SmtpTransport(
        sink.host, sink.port, security="plain", username=None, password=None, timeout=timeout
    )


@pytest.mark.parametrize("fault", ["drop", "late"])
def test_an_unconfirmed_mail_reaches_the_server_at_most_twice_and_ends_failed(
    db_url, tmp_path, smtp_sink_factory, fault
):
    sink = smtp_sink_factory()
    clock = MovableClock(at(20))
    timeout = LATE_TIMEOUT if fault == "late" else 10.0
    app = make_app(db_url, tmp_path, transport=sink_transport(sink, timeout=timeout), clock=clock)
    queue_results(app, 4)
    first_id = rows(app)[0].mail_message_id
    sink.script([fault])  # the first mail is taken, its reply never heard

    run = deliver(app)

    # the other three went out in the same run, past the unconfirmed one
    assert run.sent == 3 and run.retried == 1
    unconfirmed = rows(app)[0]
    assert unconfirmed.status == "unconfirmed" and unconfirmed.attempts == 1
    assert unconfirmed.next_attempt_at == at(20) + app.settings.smtp.resend_unconfirmed_after
    assert [row.status for row in rows(app)[1:]] == ["sent"] * 3
    assert deliver(app).handled == 0  # the resend waits for its delay

    clock.now = unconfirmed.next_attempt_at
    sink.script([fault])  # the resend is not confirmed either
    queue_results(app, 1, first=5)
    second = deliver(app)

    assert second.failed == 1 and second.sent == 1
    assert sink.arrivals()[first_id] == 2
    final = rows(app)[0]
    assert final.status == "failed" and final.attempts == 2
    assert final.mail_message_id == first_id

    clock.now += app.settings.smtp.resend_unconfirmed_after * 10
    assert deliver(app).handled == 0  # never a third time
    assert sink.arrivals()[first_id] == 2
    assert all(count == 1 for mail_id, count in sink.arrivals().items() if mail_id != first_id)
    assert [row["status"] for row in register_of(app)["outbox"]].count("failed") == 1
    assert "applicant1@example.cn" in render_digest(app)
    app.engine.dispose()


def test_an_unconfirmed_mail_confirmed_on_its_resend_is_sent(sqlite_url, tmp_path, smtp_sink):
    clock = MovableClock(at(20))
    app = make_app(sqlite_url, tmp_path, transport=smtp_sink.transport(), clock=clock)
    queue_results(app, 1)
    smtp_sink.script(["drop"])
    deliver(app)
    clock.now += app.settings.smtp.resend_unconfirmed_after

    assert deliver(app).sent == 1

    [row] = rows(app)
    assert row.status == "sent" and row.attempts == 2
    assert list(smtp_sink.arrivals().values()) == [2]  # the same Message-ID both times
    app.engine.dispose()


def test_rows_are_claimed_by_next_attempt_time_so_a_waiting_row_never_blocks_the_queue(
    sqlite_url, tmp_path, smtp_sink
):
    clock = MovableClock(at(20))
    app = make_app(sqlite_url, tmp_path, transport=smtp_sink.transport(), clock=clock)
    queue_results(app, 3)
    smtp_sink.script(["451 busy", "451 busy"])  # the first two rows wait out a back-off

    assert deliver(app).sent == 1
    clock.now += app.settings.smtp.retry_base
    queue_results(app, 1, first=4)  # newer row, due now as well
    assert deliver(app).sent == 3
    assert {row.status for row in rows(app)} == {"sent"}
    app.engine.dispose()
