"""The Dovecot fixture itself: it must be a real IMAP server other tests can lean on."""

from __future__ import annotations

import socket
from datetime import datetime, timedelta, timezone

import pytest
from imapclient import IMAPClient

pytestmark = pytest.mark.integration

MESSAGE = b"From: a@example.org\r\nSubject: fixture check\r\n\r\nhello\r\n"


def uidvalidity(dovecot, username, folder):
    with dovecot.client(username) as client:
        return client.folder_status(folder, ["UIDVALIDITY"])[b"UIDVALIDITY"]


def test_appended_message_reads_back_by_uid(dovecot):
    username, _ = dovecot.user()
    beijing = timezone(timedelta(hours=8))
    uid = dovecot.append(
        username, MESSAGE, internaldate=datetime(2025, 7, 12, 10, 20, 18, tzinfo=beijing)
    )

    with dovecot.client(username) as client:
        client.select_folder("INBOX", readonly=True)
        answer = client.fetch([uid], ["BODY.PEEK[]", "INTERNALDATE"])

    assert answer[uid][b"BODY[]"] == MESSAGE
    assert answer[uid][b"INTERNALDATE"] == datetime(2025, 7, 12, 10, 20, 18, tzinfo=beijing)


def test_each_new_user_starts_with_an_empty_inbox(dovecot):
    first, _ = dovecot.user("same")
    second, _ = dovecot.user("same")
    dovecot.append(first, MESSAGE)

    assert first != second
    with dovecot.client(second) as client:
        assert client.folder_status("INBOX", ["MESSAGES"])[b"MESSAGES"] == 0


def test_append_sets_flags_and_creates_the_folder(dovecot):
    username, _ = dovecot.user()
    uid = dovecot.append(username, MESSAGE, folder="Archive", flags=[b"\\Seen"])

    with dovecot.client(username) as client:
        client.select_folder("Archive", readonly=True)
        assert b"\\Seen" in client.get_flags([uid])[uid]


def test_imaps_port_serves_the_same_mail_with_the_fixture_certificate(dovecot):
    username, password = dovecot.user()
    uid = dovecot.append(username, MESSAGE)

    with IMAPClient(
        dovecot.host, dovecot.imaps_port, ssl=True, ssl_context=dovecot.ssl_context()
    ) as client:
        client.login(username, password)
        client.select_folder("INBOX", readonly=True)
        assert client.fetch([uid], ["BODY.PEEK[]"])[uid][b"BODY[]"] == MESSAGE


def test_plain_port_offers_starttls(dovecot):
    with IMAPClient(dovecot.host, dovecot.port, ssl=False) as client:
        assert b"STARTTLS" in client.capabilities()


def test_restarted_server_listens_on_the_same_port_with_the_same_mail(dovecot):
    username, _ = dovecot.user()
    uid = dovecot.append(username, MESSAGE)
    before = uidvalidity(dovecot, username, "INBOX")

    dovecot.stop()
    try:
        with pytest.raises(OSError):
            socket.create_connection((dovecot.host, dovecot.port), timeout=1.0).close()
    finally:
        dovecot.start()

    with dovecot.client(username) as client:
        client.select_folder("INBOX", readonly=True)
        assert client.fetch([uid], ["BODY.PEEK[]"])[uid][b"BODY[]"] == MESSAGE
    assert uidvalidity(dovecot, username, "INBOX") == before


def test_stopping_the_server_drops_connected_clients(dovecot):
    username, _ = dovecot.user()
    client = dovecot.client(username)
    client.select_folder("INBOX")

    dovecot.stop()
    try:
        with pytest.raises(IMAPClient.AbortError):
            client.noop()
    finally:
        client.shutdown()
        dovecot.start()


@pytest.mark.parametrize("folder", ["INBOX", "Cases"])
def test_recreated_folder_is_empty_with_a_new_uidvalidity(dovecot, folder):
    username, _ = dovecot.user()
    dovecot.append(username, MESSAGE, folder=folder)
    before = uidvalidity(dovecot, username, folder)

    dovecot.recreate_folder(username, folder)

    with dovecot.client(username) as client:
        status = client.folder_status(folder, ["UIDVALIDITY", "MESSAGES", "UIDNEXT"])
    assert status[b"UIDVALIDITY"] != before
    assert status[b"MESSAGES"] == 0
    assert dovecot.append(username, MESSAGE, folder=folder) == 1
