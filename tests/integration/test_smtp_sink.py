"""The SMTP sink is test infrastructure we wrote: check it behaves like the server it stands for."""

from __future__ import annotations

import asyncio
from email.message import EmailMessage

import aiosmtplib
import pytest

from tests.support.smtp_sink import SmtpSink

pytestmark = pytest.mark.integration


def small_message(subject: str = "你好") -> EmailMessage:
    message = EmailMessage()
    message["From"] = "cases@example.org"
    message["To"] = "unit@example.cn"
    message["Subject"] = subject
    message.set_content("测试正文")
    return message


def send(
    sink: SmtpSink,
    *messages: EmailMessage,
    username: str | None = None,
    password: str = "",
) -> list[str]:
    """Send over one aiosmtplib connection; return the error text of each failed message."""

    async def run() -> list[str]:
        failures: list[str] = []
        client = aiosmtplib.SMTP(
            hostname=sink.host,
            port=sink.port,
            start_tls=sink.security == "starttls",
            use_tls=sink.security == "ssl",
            tls_context=sink.client_tls_context,
            timeout=5,
        )
        await client.connect()
        transport = client.transport
        try:
            if username is not None:
                await client.login(username, password)
            for message in messages:
                try:
                    await client.send_message(message)
                except aiosmtplib.SMTPResponseException as exc:
                    failures.append(f"{exc.code} {exc.message}")
        finally:
            # Abort rather than wait for a TLS close_notify that would outlive the loop.
            if isinstance(transport, asyncio.Transport):
                transport.abort()
            await asyncio.sleep(0)
            await asyncio.sleep(0)
        return failures

    return asyncio.run(run())


def test_sink_receives_a_message_sent_with_aiosmtplib(smtp_sink):
    send(smtp_sink, small_message("推荐材料"))

    [envelope] = smtp_sink.received
    assert envelope.mail_from == "cases@example.org"
    assert envelope.rcpt_tos == ["unit@example.cn"]
    assert envelope.message["Subject"] == "推荐材料"
    assert envelope.message.get_content().strip() == "测试正文"
    assert smtp_sink.connections == 1


def test_sink_starts_each_test_empty(smtp_sink):
    assert smtp_sink.received == []
    assert smtp_sink.connections == 0


def test_sink_answers_data_from_its_script_then_accepts(smtp_sink):
    smtp_sink.script(["451 try later", "550 no such user"])

    failures = send(smtp_sink, small_message("一"), small_message("二"), small_message("三"))

    assert failures == ["451 try later", "550 no such user"]
    assert [envelope.message["Subject"] for envelope in smtp_sink.received] == ["三"]


def test_sink_with_starttls_and_auth_accepts_the_right_password(smtp_sink_factory):
    sink = smtp_sink_factory(security="starttls", users={"cases": "s3cret"})

    send(sink, small_message(), username="cases", password="s3cret")

    assert len(sink.received) == 1
    assert sink.logins == ["cases"]


def test_sink_refuses_a_wrong_password_promptly(smtp_sink_factory):
    sink = smtp_sink_factory(security="starttls", users={"cases": "s3cret"})

    with pytest.raises(aiosmtplib.SMTPAuthenticationError) as refusal:
        send(sink, small_message(), username="cases", password="wrong")

    assert refusal.value.code == 535
    assert sink.received == []


def test_sink_over_implicit_tls_receives_a_message(smtp_sink_factory):
    sink = smtp_sink_factory(security="ssl")

    send(sink, small_message())

    assert len(sink.received) == 1


def test_sink_closes_the_connection_after_the_configured_number_of_messages(smtp_sink_factory):
    sink = smtp_sink_factory(drop_after=1)

    with pytest.raises(aiosmtplib.SMTPServerDisconnected):
        send(sink, small_message("一"), small_message("二"))

    assert [envelope.message["Subject"] for envelope in sink.received] == ["一"]
