"""SmtpTransport against a real aiosmtpd server: security modes, failures, connection reuse."""

from __future__ import annotations

from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any

import pytest

from config.errors import DeliveryError
from notifications.contexts import sample_context
from notifications.message import OutgoingMail, build_message, make_message_id
from notifications.render import Renderer
from notifications.transport import SmtpTransport
from tests.support.services import free_port
from tests.support.smtp_sink import SmtpSink

pytestmark = pytest.mark.integration

RECIPIENT = "wang.lei@zj.chinamobile.example"


@pytest.fixture(scope="module")
def receipt() -> EmailMessage:
    rendered = Renderer().render(sample_context("unit_receipt"))
    mail = OutgoingMail(kind="unit_receipt", to=[f"王磊 <{RECIPIENT}>"], rendered=rendered)
    return build_message(
        mail,
        from_address="案例征集 <cases@cace.example>",
        message_id=make_message_id("cace.example"),
        date=datetime(2025, 7, 20, 6, 5, tzinfo=UTC),
    )


def transport_for(sink: SmtpSink, **options: Any) -> SmtpTransport:
    settings = {
        "security": sink.security,
        "username": None,
        "password": None,
        "timeout": 5.0,
        "tls_context": sink.client_tls_context,
    } | options
    return SmtpTransport(sink.host, sink.port, **settings)


def test_plain_smtp_delivers_the_receipt_to_the_envelope_recipient(smtp_sink, receipt):
    with transport_for(smtp_sink).connect() as sender:
        sender.send(receipt, [RECIPIENT])

    [envelope] = smtp_sink.received
    assert envelope.rcpt_tos == [RECIPIENT]
    assert envelope.mail_from == "cases@cace.example"
    assert envelope.message["Subject"] == receipt["Subject"]
    assert "中国移动通信集团浙江有限公司" in envelope.message.get_body(("plain",)).get_content()


def test_starttls_with_login_delivers(smtp_sink_factory, receipt):
    sink = smtp_sink_factory(security="starttls", users={"cases@cace.example": "pw-2025"})
    transport = transport_for(sink, username="cases@cace.example", password="pw-2025")

    with transport.connect() as sender:
        sender.send(receipt, [RECIPIENT])

    assert sink.logins == ["cases@cace.example"]
    assert len(sink.received) == 1


def test_a_wrong_password_is_a_transient_failure_that_names_the_login(smtp_sink_factory, receipt):
    sink = smtp_sink_factory(security="starttls", users={"cases@cace.example": "pw-2025"})
    transport = transport_for(sink, username="cases@cace.example", password="typo")

    with transport.connect() as sender, pytest.raises(DeliveryError) as failure:
        sender.send(receipt, [RECIPIENT])

    assert failure.value.permanent is False
    assert failure.value.code == 535
    assert "cases@cace.example" in str(failure.value)
    assert sink.received == []


def test_implicit_tls_delivers(smtp_sink_factory, receipt):
    sink = smtp_sink_factory(security="ssl")

    with transport_for(sink).connect() as sender:
        sender.send(receipt, [RECIPIENT])

    assert len(sink.received) == 1


def test_an_untrusted_certificate_is_refused(smtp_sink_factory, receipt):
    sink = smtp_sink_factory(security="ssl")
    transport = transport_for(sink, tls_context=None)  # system trust store: self-signed fails

    with transport.connect() as sender, pytest.raises(DeliveryError) as failure:
        sender.send(receipt, [RECIPIENT])

    assert failure.value.permanent is False
    assert sink.received == []


def test_451_is_transient_and_the_next_attempt_on_the_same_connection_succeeds(smtp_sink, receipt):
    smtp_sink.script(["451 4.3.0 try again later"])

    with transport_for(smtp_sink).connect() as sender:
        with pytest.raises(DeliveryError) as failure:
            sender.send(receipt, [RECIPIENT])
        sender.send(receipt, [RECIPIENT])

    assert failure.value.permanent is False
    assert failure.value.code == 451
    assert len(smtp_sink.received) == 1
    assert smtp_sink.connections == 1


def test_550_is_a_permanent_failure(smtp_sink, receipt):
    smtp_sink.script(["550 5.1.1 no such user"])

    with transport_for(smtp_sink).connect() as sender, pytest.raises(DeliveryError) as failure:
        sender.send(receipt, [RECIPIENT])

    assert failure.value.permanent is True
    assert failure.value.code == 550
    assert "no such user" in str(failure.value)


def test_a_batch_shares_one_connection(smtp_sink, receipt):
    with transport_for(smtp_sink).connect() as sender:
        for _ in range(5):
            sender.send(receipt, [RECIPIENT])

    assert len(smtp_sink.received) == 5
    assert smtp_sink.connections == 1


def test_each_connect_block_opens_its_own_connection(smtp_sink, receipt):
    transport = transport_for(smtp_sink)
    for _ in range(2):
        with transport.connect() as sender:
            sender.send(receipt, [RECIPIENT])

    assert smtp_sink.connections == 2


def test_a_connection_dropped_mid_batch_is_reopened_and_nothing_is_lost(smtp_sink_factory, receipt):
    sink = smtp_sink_factory(drop_after=2)

    with transport_for(sink).connect() as sender:
        for _ in range(5):
            sender.send(receipt, [RECIPIENT])

    assert len(sink.received) == 5
    assert [envelope.connection for envelope in sink.received] == [1, 1, 2, 2, 3]


def test_an_unreachable_server_is_a_transient_failure(receipt):
    transport = SmtpTransport(
        "127.0.0.1", free_port(), security="plain", username=None, password=None, timeout=2.0
    )

    with transport.connect() as sender, pytest.raises(DeliveryError) as failure:
        sender.send(receipt, [RECIPIENT])

    assert failure.value.permanent is False
    assert "cannot connect" in str(failure.value)


def test_a_recipient_with_a_line_break_never_reaches_the_server(smtp_sink, receipt):
    with transport_for(smtp_sink).connect() as sender, pytest.raises(DeliveryError) as failure:
        sender.send(receipt, ["a@example.cn\r\nRCPT TO:<x@evil.example>"])

    assert failure.value.permanent is True
    assert smtp_sink.received == []
