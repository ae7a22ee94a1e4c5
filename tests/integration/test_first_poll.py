"""The first poll of a mailbox that already holds a season of mail records all of it and
replies to none of it (unless `campaign.starts` or `campaign.reply_to_old_mail` say so), and
says so on the terminal and in the log; mail that arrives afterwards is answered."""

from __future__ import annotations

import pytest
from sqlmodel import Session, select

from service.db import create_db_engine, upgrade_schema
from service.ingest import poll
from service.models import Message, Outbox
from tests.support.apps import imap_mailbox, make_app
from tests.support.bulk_mail import append_all, small_message
from tests.support.intake_process import local_config, run_intake
from tests.support.mailmaker import at

pytestmark = pytest.mark.integration


def receipts(engine) -> list[Outbox]:
    with Session(engine) as session:
        return list(session.exec(select(Outbox).where(Outbox.kind == "unit_receipt")).all())


def test_the_first_poll_of_fifty_old_messages_queues_no_receipt_and_says_why(
    sqlite_url, tmp_path, dovecot
):
    username, password = dovecot.user("season")
    with dovecot.client(username) as client:
        append_all(client, [small_message(number, run="old") for number in range(50)])
    mailbox = {
        "kind": "imap",
        "host": dovecot.host,
        "port": dovecot.port,
        "security": "plain",
        "username": username,
        "password": password,
    }
    config = local_config(
        tmp_path, sqlite_url, mailbox=mailbox, campaign={"reply_to_old_mail": False}
    )
    engine = create_db_engine(sqlite_url)
    upgrade_schema(engine)

    first = run_intake(config, "poll", "--once", check=True)

    with Session(engine) as session:
        statuses = {message.status for message in session.exec(select(Message)).all()}
    assert statuses == {"processed"}
    assert receipts(engine) == []
    assert "邮箱中已有50封来信" in first.stderr and "不会自动回复" in first.stderr
    assert "found 50 messages already in the mailbox" in first.stderr  # the log line

    dovecot.append(username, small_message(50, run="new"))
    second = run_intake(config, "poll", "--once", check=True)

    assert [row.recipients for row in receipts(engine)] == [["contact50@unit50.example.cn"]]
    assert "邮箱中已有" not in second.stderr
    engine.dispose()


@pytest.mark.parametrize(
    ("campaign", "answered"),
    [({"reply_to_old_mail": True}, 6), ({"starts": at(2).isoformat()}, 3)],
    ids=["reply_to_old_mail", "starts"],
)
def test_campaign_settings_decide_over_the_first_poll_rule(
    sqlite_url, tmp_path, dovecot, campaign, answered
):
    username, password = dovecot.user("decide")
    dates = [at(1) if number < 3 else at(3) for number in range(6)]
    with dovecot.client(username) as client:
        append_all(client, [small_message(n, run="decide") for n in range(6)], dates=dates)
    app = make_app(
        sqlite_url,
        tmp_path,
        open_mailbox=imap_mailbox(dovecot, username, password),
        campaign={"reply_to_old_mail": False, **campaign},
    )

    report = poll(app)

    assert report.ok and report.processed == 6 and report.old_mail == 0
    assert len(receipts(app.engine)) == answered
    app.engine.dispose()
