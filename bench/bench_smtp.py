"""Mails per second from SmtpTransport to a loopback aiosmtpd sink, against raw aiosmtplib.

Run from the repository root:  .venv/bin/python -m bench.bench_smtp [--count 300] [--runs 3]

Three ways to send the same rendered unit receipts to the same sink:
  batch     SmtpTransport, one connect() block (one connection) for every mail
  per-mail  SmtpTransport, one connect() block (one connection) per mail
  raw       aiosmtplib in one event loop over one connection: the floor for our facade
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from email.message import EmailMessage

import aiosmtplib

from notifications.contexts import sample_context
from notifications.message import OutgoingMail, build_message, make_message_id
from notifications.render import Renderer
from notifications.transport import SmtpTransport
from tests.support.smtp_sink import SmtpSink

RECIPIENT = "wang.lei@zj.chinamobile.example"


def build_messages(count: int) -> list[EmailMessage]:
    """`count` unit receipts with distinct Message-IDs, rendered once."""
    rendered = Renderer().render(sample_context("unit_receipt"))
    mail = OutgoingMail(kind="unit_receipt", to=[RECIPIENT], rendered=rendered)
    return [
        build_message(
            mail,
            from_address="案例征集 <cases@cace.example>",
            message_id=make_message_id("cace.example"),
            date=datetime.now(UTC),
        )
        for _ in range(count)
    ]


def send_batch(transport: SmtpTransport, messages: list[EmailMessage]) -> None:
    with transport.connect() as sender:
        for message in messages:
            sender.send(message, [RECIPIENT])


def send_per_mail(transport: SmtpTransport, messages: list[EmailMessage]) -> None:
    for message in messages:
        with transport.connect() as sender:
            sender.send(message, [RECIPIENT])


def send_raw(sink: SmtpSink, messages: list[EmailMessage]) -> None:
    async def run() -> None:
        async with aiosmtplib.SMTP(hostname=sink.host, port=sink.port, start_tls=False) as client:
            for message in messages:
                await client.send_message(message, recipients=[RECIPIENT])

    asyncio.run(run())


def measure(sink: SmtpSink, send: Callable[[], None], count: int, runs: int) -> float:
    """Median mails per second over `runs` runs; checks the sink received every mail."""
    rates = []
    for _ in range(runs):
        sink.clear()
        started = time.perf_counter()
        send()
        elapsed = time.perf_counter() - started
        if len(sink.received) != count:
            raise SystemExit(f"the sink received {len(sink.received)} of {count} mails")
        rates.append(count / elapsed)
    return statistics.median(rates)


def main() -> None:
    """Print the three rates and the connections each way opened."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=300, help="mails per run")
    parser.add_argument("--runs", type=int, default=3, help="runs per way; the median is shown")
    options = parser.parse_args()

    messages = build_messages(options.count)
    size = len(messages[0].as_bytes())
    with SmtpSink() as sink:
        transport = SmtpTransport(
            sink.host, sink.port, security="plain", username=None, password=None, timeout=10.0
        )
        ways: list[tuple[str, Callable[[], None]]] = [
            ("batch (one connection)", lambda: send_batch(transport, messages)),
            ("per-mail connection", lambda: send_per_mail(transport, messages)),
            ("raw aiosmtplib (floor)", lambda: send_raw(sink, messages)),
        ]
        print(f"{options.count} unit receipts of {size} bytes, median of {options.runs} runs")
        for name, send in ways:
            rate = measure(sink, send, options.count, options.runs)
            print(f"  {name:<24} {rate:8.0f} mails/s   ({sink.connections} connections)")
    print(f"reproduce: .venv/bin/python -m bench.bench_smtp {' '.join(sys.argv[1:])}".rstrip())


if __name__ == "__main__":
    main()
