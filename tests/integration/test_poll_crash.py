"""A poller killed at any moment, or a server that vanishes mid-batch, loses and doubles nothing.

The poller runs in a subprocess (tests/support/crash_poller.py) that stops at a chosen point
(mid-fetch, between archiving a batch and committing it, after a committed batch, mid-processing,
before the after-processing command) and is ended there with SIGKILL; the next one takes over at
once (the dead holder's lease is stale) and resumes. In the end every message is in the ledger
once, processed, with one receipt. No test waits for a guessed delay.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter

import pytest
from sqlmodel import Session, col, select

from service.ingest import poll
from service.models import Lease, Message, Outbox
from tests.support.apps import imap_mailbox, make_app
from tests.support.bulk_mail import append_all, small_message
from tests.support.intake_process import REPO

pytestmark = pytest.mark.integration


def start_poller(db_url, workdir, dovecot, username, password, *, batch_size=10, pause=""):
    return subprocess.Popen(
        [
            sys.executable, "-m", "tests.support.crash_poller", db_url, str(workdir),
            dovecot.host, str(dovecot.port), username, password, str(batch_size), pause,
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )  # fmt: skip


def kill_when_paused(poller):
    """Wait until the poller says it reached its pause point, then SIGKILL it there."""
    while True:
        line = poller.stdout.readline()
        if not line:
            poller.wait()
            pytest.fail(f"the poller ended before its pause point: {poller.stderr.read()[-2000:]}")
        if line.startswith(b"paused "):
            break
    os.kill(poller.pid, signal.SIGKILL)
    poller.wait()
    poller.stdout.close()
    poller.stderr.close()


def ledger_counts(app):
    """(messages in the ledger, of which processed)."""
    with Session(app.engine) as session:
        statuses = session.exec(select(Message.status)).all()
    return len(statuses), statuses.count("processed")


def ledger_summary(app):
    with Session(app.engine) as session:
        messages = session.exec(select(Message)).all()
        receipts = session.exec(select(Outbox).where(col(Outbox.kind) == "unit_receipt")).all()
    return messages, Counter(row.message_pk for row in receipts)


def assert_each_message_once_processed_with_one_receipt(app, appended):
    messages, receipts = ledger_summary(app)
    assert len(messages) == len(appended)
    assert (
        len({row.uid for row in messages}) == len({row.sha256 for row in messages}) == len(appended)
    )
    assert {row.message_id for row in messages} == {
        raw.split(b"Message-ID: ", 1)[1].split(b"\r\n", 1)[0].decode() for raw in appended
    }
    assert all(row.status == "processed" for row in messages)
    assert all(app.archive.has(row.sha256) for row in messages)
    assert set(receipts) == {row.id for row in messages}
    assert set(receipts.values()) == {1}


KILL_POINTS = [
    # (pause point, ledger rows and processed rows left behind by the kill)
    ("fetch:15", 10, 0),  # mid-way through fetching the second batch
    ("archive:2", 20, 0),  # second batch's files archived, its rows not committed
    ("batch:3", 50, 0),  # right after a committed batch
    ("read:7", 100, 6),  # processing: the 7th message read, not yet recorded
    ("mark:1", 100, 100),  # everything processed, the after-processing command not sent
]


@pytest.mark.slow
def test_a_poller_killed_at_each_stage_ends_with_every_message_once(db_url, tmp_path, dovecot):
    username, password = dovecot.user("killed")
    appended = [small_message(number, run="killed") for number in range(100)]
    with dovecot.client(username) as client:
        append_all(client, appended)
    app = make_app(db_url, tmp_path, open_mailbox=imap_mailbox(dovecot, username, password))

    left_behind = []
    for pause, _, _ in KILL_POINTS:
        kill_when_paused(start_poller(db_url, tmp_path, dovecot, username, password, pause=pause))
        left_behind.append(ledger_counts(app))
    final = start_poller(db_url, tmp_path, dovecot, username, password)
    out, err = final.communicate(timeout=120)
    report = json.loads(out.splitlines()[-1])

    assert left_behind == [(rows, processed) for _, rows, processed in KILL_POINTS]
    assert final.returncode == 0 and not report["skipped_busy"], err.decode()[-2000:]
    assert report["marked"] == 100
    assert b"Traceback" not in err
    assert_each_message_once_processed_with_one_receipt(app, appended)
    assert poll(app).listed == 0
    app.engine.dispose()


def test_dovecot_stopped_mid_batch_ends_the_poll_cleanly_and_the_next_resumes(
    sqlite_url, tmp_path, dovecot
):
    username, password = dovecot.user("outage")
    appended = [small_message(number, run="outage") for number in range(60)]
    with dovecot.client(username) as client:
        append_all(client, appended)
    app = make_app(
        sqlite_url,
        tmp_path,
        open_mailbox=imap_mailbox(dovecot, username, password),
        mailbox={"batch_size": 10},
    )

    def stop_after_two_batches(done, total):
        if done == 20:
            dovecot.stop()

    try:
        interrupted = poll(app, progress=stop_after_two_batches)
    finally:
        dovecot.start()
    resumed = poll(app)

    assert not interrupted.ok and "could not fetch messages from" in interrupted.error
    assert interrupted.archived == 20 and interrupted.processed == 20
    assert resumed.ok and resumed.archived == 40 and resumed.duplicates == 0
    assert_each_message_once_processed_with_one_receipt(app, appended)
    app.engine.dispose()


def test_a_lease_held_by_a_live_poller_in_another_process_makes_a_poll_skip(
    postgres_url, tmp_path, dovecot
):
    username, password = dovecot.user("busy")
    appended = [small_message(number, run="busy") for number in range(100)]
    with dovecot.client(username) as client:
        append_all(client, appended)
    app = make_app(postgres_url, tmp_path, open_mailbox=imap_mailbox(dovecot, username, password))
    poller = start_poller(postgres_url, tmp_path, dovecot, username, password, pause="batch:1")
    try:
        assert poller.stdout.readline().startswith(b"progress 0 ")
        assert poller.stdout.readline().startswith(b"progress 10 ")
        assert poller.stdout.readline() == b"paused batch 1\n", poller.stderr.read()
        with Session(app.engine) as session:
            holder = session.exec(select(Lease.holder)).first()
        assert holder is not None and f":{poller.pid}:" in holder

        while_busy = poll(app)

        os.kill(poller.pid, signal.SIGKILL)
        poller.wait()
    finally:
        if poller.poll() is None:
            poller.kill()
            poller.wait()
        poller.stdout.close()
        poller.stderr.close()
    after_the_kill = poll(app)

    assert while_busy.skipped_busy and while_busy.archived == 0
    assert after_the_kill.ok and not after_the_kill.skipped_busy
    assert_each_message_once_processed_with_one_receipt(app, appended)
    app.engine.dispose()
