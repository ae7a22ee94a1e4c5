"""Polls never overlap: the poll lease holds across threads, processes and a racing INSERT."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import Session

from service.ingest import poll
from service.leases import held_lease, new_holder, take_lease
from service.models import Lease
from tests.support.apps import imap_mailbox, make_app
from tests.support.bulk_mail import append_all, small_message

pytestmark = pytest.mark.integration

NOW = datetime(2025, 7, 20, 9, 0, tzinfo=UTC)
TTL = timedelta(minutes=10)


def test_a_poll_started_while_another_runs_on_the_same_mailbox_skips(
    postgres_url, tmp_path, dovecot
):
    username, password = dovecot.user("overlap")
    with dovecot.client(username) as client:
        append_all(client, [small_message(number, run="overlap") for number in range(30)])
    app = make_app(postgres_url, tmp_path, open_mailbox=imap_mailbox(dovecot, username, password))
    inner: list = []

    def start_a_second_poll(done, total):
        if not inner:
            inner.append(poll(app))

    outer = poll(app, progress=start_a_second_poll)

    assert outer.ok and outer.archived == 30 and outer.processed == 30
    assert inner[0].skipped_busy and inner[0].archived == 0 and inner[0].processed == 0
    assert poll(app).ok  # released at the end: the next poll runs
    app.engine.dispose()


def test_exactly_one_of_many_racing_takers_gets_a_new_lease(db):
    for round_number in range(10):
        name = f"poll:race/{round_number}"
        start = threading.Barrier(6)
        won: list[bool] = []

        def take(name=name, start=start, won=won):
            start.wait()
            won.append(take_lease(db, name, holder=new_holder(), now=NOW, ttl=TTL))

        threads = [threading.Thread(target=take) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

        assert sorted(won) == [False] * 5 + [True]


def test_a_lease_of_a_live_holder_elsewhere_holds_until_it_expires(db):
    with Session(db) as session:
        session.add(Lease(name="poll:x", holder="otherhost:4242:abcd", expires_at=NOW + TTL))
        session.commit()

    assert not take_lease(db, "poll:x", holder=new_holder(), now=NOW, ttl=TTL)
    assert take_lease(db, "poll:x", holder=new_holder(), now=NOW + TTL, ttl=TTL)


def test_two_holds_in_one_process_exclude_each_other(db):
    with held_lease(db, "poll:y", clock=lambda: NOW, ttl=TTL):
        assert not take_lease(db, "poll:y", holder=new_holder(), now=NOW, ttl=TTL)
    assert take_lease(db, "poll:y", holder=new_holder(), now=NOW, ttl=TTL)
