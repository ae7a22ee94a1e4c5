"""Mails per second through the outbox (`deliver()`) to an aiosmtpd sink, against the floor.

Three ways to hand the same rendered result mails to the sink:
  raw        aiosmtplib `send_message` of pre-built messages over one connection (the floor)
  outbox     `deliver()`: claim, build, send, mark sent, one row at a time, one connection
  per-mail   `deliver(limit=1)` in a loop: the outbox with a new connection for every mail

The sink runs in a child process (the test fixture's `SmtpSink`), so client and server never
share a GIL. Reproduce with:

    .venv/bin/python bench/bench_deliver.py --mails 300 [--db postgresql+psycopg://...]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import aiosmtplib
from sqlmodel import Session, col, select

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from notifications.contexts import ResultNotice
from notifications.message import OutgoingMail, build_message
from notifications.render import RenderedMail
from notifications.transport import SmtpTransport
from service.models import Outbox
from service.outbox import deliver, queue_mail
from tests.support.apps import make_app

CLOCK = datetime(2025, 7, 20, 9, 0, tzinfo=UTC)


def run_sink(ready: Any, stop: Any) -> None:
    """The child process: an SmtpSink until told to stop; reports its port, then its count."""
    from tests.support.smtp_sink import SmtpSink

    with SmtpSink() as sink:
        ready.send(sink.port)
        stop.recv()
        ready.send(len(sink.received))


def queue(app: Any, count: int, run: str) -> None:
    with Session(app.engine) as session:
        for number in range(count):
            ref = f"B{run}-{number:05d}"
            queue_mail(
                app,
                session,
                key=f"bench:{ref}",
                context=ResultNotice(
                    campaign_name=app.settings.campaign.name,
                    submission_ref=ref,
                    submission_title=f"基于5G-A的智慧港口远程操控系统{number}",
                    applicant="宁波舟山港股份有限公司",
                    contact_name="李娜",
                    result="selected",
                    note="案例将收录于《2025信息通信行业科技创新案例集》。",
                ),
                to=[f"applicant{number}@example.cn"],
            )
        session.commit()


def prebuilt(app: Any, count: int, run: str) -> list[EmailMessage]:
    """The same rendered mails, built once up front: what the floor sends."""
    queue(app, count, run)
    with Session(app.engine) as session:
        prefix = f"bench:B{run}-"
        rows = session.exec(
            select(Outbox).where(col(Outbox.idempotency_key).startswith(prefix))
        ).all()
        messages = [
            build_message(
                OutgoingMail(
                    kind="result",
                    to=row.recipients,
                    rendered=RenderedMail(row.subject, row.text_body, row.html_body),
                    auto_submitted="auto-replied",
                ),
                from_address=app.settings.smtp.from_address,
                message_id=row.mail_message_id,
                date=CLOCK,
            )
            for row in rows
        ]
        for row in rows:  # the floor sends these itself; the outbox must not send them again
            row.status = "sent"
            session.add(row)
        session.commit()
        return messages


async def send_raw(port: int, messages: list[EmailMessage]) -> None:
    client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False)
    await client.connect()
    for message in messages:
        await client.send_message(message)
    await client.quit()


def measure(name: str, count: int, action: Any, repeats: int) -> float:
    rates = []
    for repeat in range(repeats):
        prepare = action(repeat)
        started = time.perf_counter()
        prepare()
        rates.append(count / (time.perf_counter() - started))
    rate = statistics.median(rates)
    each = ", ".join(f"{value:.0f}" for value in rates)
    print(f"{name:10s} {rate:8.0f} mails/s  (median of {repeats}: {each})")
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mails", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--db", default=None, help="database URL (default: a temp SQLite file)")
    options = parser.parse_args()
    ours, theirs = multiprocessing.Pipe()
    stop_ours, stop_theirs = multiprocessing.Pipe()
    child = multiprocessing.Process(target=run_sink, args=(theirs, stop_theirs), daemon=True)
    child.start()
    port = ours.recv()
    workdir = Path(tempfile.mkdtemp(prefix="bench-deliver-"))
    url = options.db or f"sqlite:///{workdir / 'bench.db'}"
    transport = SmtpTransport(
        "127.0.0.1", port, security="plain", username=None, password=None, timeout=30.0
    )
    app = make_app(url, workdir, transport=transport, clock=lambda: CLOCK)
    count = options.mails
    print(
        f"{count} result mails (~{len(prebuilt(app, 1, 'size')[0].as_bytes())} bytes each), "
        f"database {app.engine.dialect.name}, sink in a child process"
    )

    def raw(repeat: int) -> Any:
        messages = prebuilt(app, count, f"raw{repeat}")
        return lambda: asyncio.run(send_raw(port, messages))

    def outbox(repeat: int) -> Any:
        deliver(app)  # flush earlier runs' rows
        queue(app, count, f"one{repeat}")
        return lambda: deliver(app)

    def per_mail(repeat: int) -> Any:
        deliver(app)
        queue(app, count, f"each{repeat}")

        def run() -> None:
            while deliver(app, limit=1).sent:
                pass

        return run

    floor = measure("raw", count, raw, options.repeats)
    one = measure("outbox", count, outbox, options.repeats)
    each = measure("per-mail", count, per_mail, options.repeats)
    print(
        f"outbox over one connection: {one / floor:.0%} of the floor; "
        f"a connection per mail: {each / floor:.0%}"
    )
    stop_ours.send("stop")
    print(f"sink accepted {ours.recv()} mails in all")
    child.join(timeout=10)
    app.engine.dispose()


if __name__ == "__main__":
    main()
