"""Two `intake run` processes on one PostgreSQL database and one mailbox do the work once."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime

import pytest
import sqlalchemy as sa

from service.db import create_db_engine
from tests.support.apps import EXPECTED_RECEIPTS, append_samples
from tests.support.intake_process import (
    in_reply_to,
    run_intake,
    service_config,
    sink_summary,
    wait_until,
)

pytestmark = pytest.mark.integration

EXTRA_MESSAGES = 24


def plain_enquiry(number: int) -> tuple[str, bytes]:
    """A short human enquiry from its own sender: each earns one unit receipt."""
    message = EmailMessage()
    message["From"] = f"推荐单位{number} <unit{number}@units.example>"
    message["To"] = "cases@cace.example"
    message["Subject"] = f"关于推荐材料的咨询 {number}"
    message["Message-ID"] = f"<enquiry-{number}@units.example>"
    message["Date"] = format_datetime(
        datetime(2025, 7, 10, 9, 0, tzinfo=UTC) + timedelta(minutes=number)
    )
    message.set_content(f"您好，请问推荐表是否需要加盖公章？谢谢。（第{number}封）")
    return str(message["Message-ID"]), bytes(message)


def ledger(database_url: str) -> tuple[Counter[str], Counter[str], int]:
    """(messages by Message-ID, sent mails by their Message-ID, rows still pending)."""
    engine = create_db_engine(database_url)
    try:
        with engine.connect() as connection:
            messages = Counter(
                str(row[0]) for row in connection.execute(sa.text("select message_id from message"))
            )
            sent = Counter(
                str(row[0])
                for row in connection.execute(
                    sa.text("select mail_message_id from outbox where status = 'sent'")
                )
            )
            pending = connection.execute(
                sa.text(
                    "select (select count(*) from outbox where status = 'pending')"
                    " + (select count(*) from message where status = 'pending')"
                )
            ).scalar_one()
    finally:
        engine.dispose()
    return messages, sent, int(pending)


def test_two_instances_on_one_database_record_every_message_once_and_send_every_receipt_once(
    tmp_path, dovecot, smtp_sink, postgres_url, start_service
):
    username, password = dovecot.user("pair")
    archive = tmp_path / "shared-archive"  # several hosts share the archive like the database
    configs = []
    for name in ("a", "b"):
        workdir = tmp_path / name
        workdir.mkdir()
        configs.append(
            service_config(
                workdir,
                database_url=postgres_url,
                dovecot=dovecot,
                username=username,
                password=password,
                smtp_sink=smtp_sink,
                archive=archive,
            )
        )
    assert run_intake(configs[0], "db", "upgrade", cwd=tmp_path).returncode == 0
    enquiries = [plain_enquiry(number) for number in range(EXTRA_MESSAGES)]
    expected_replies = {*EXPECTED_RECEIPTS, *(message_id for message_id, _ in enquiries)}

    append_samples(dovecot, username)
    for _, raw in enquiries[: EXTRA_MESSAGES // 2]:
        dovecot.append(username, raw)
    services = [
        start_service(config, cwd=config.parent, name=config.parent.name) for config in configs
    ]
    for _, raw in enquiries[EXTRA_MESSAGES // 2 :]:  # more mail while both are running
        dovecot.append(username, raw)

    def replies_seen() -> Counter[str]:
        return Counter(in_reply_to(item) for item in smtp_sink.received)

    wait_until(
        lambda: expected_replies <= set(replies_seen()),
        timeout=180,
        what="a receipt for every message",
        evidence=lambda: (
            sink_summary(smtp_sink)
            + "".join(
                f"\n--- {service.log_path.name}\n{service.log()[-3000:]}" for service in services
            )
        ),
    )
    wait_until(
        lambda: ledger(postgres_url)[2] == 0,
        timeout=120,
        what="nothing left pending in the ledger or the outbox",
    )
    statuses = [service.stop() for service in services]

    messages, sent, _ = ledger(postgres_url)
    replies = replies_seen()
    mail_ids = Counter(str(item.message["Message-ID"]).strip() for item in smtp_sink.received)
    assert statuses == [0, 0]
    assert len(messages) == len(EXPECTED_RECEIPTS) + EXTRA_MESSAGES
    assert set(messages.values()) == {1}, messages
    assert all(replies[message_id] == 1 for message_id in expected_replies), replies
    assert set(mail_ids.values()) == {1}
    assert set(mail_ids) == set(sent)
    for service in services:  # which instance did what, shown with -rP
        log = service.log()
        print(
            service.log_path.name,
            "mail sent:",
            log.count("mail sent:"),
            "polls with mail:",
            log.count("event=poll_done"),
        )
