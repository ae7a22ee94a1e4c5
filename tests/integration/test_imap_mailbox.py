"""ImapMailbox against a real Dovecot: what the ingest pipeline relies on, shown on the wire."""

from __future__ import annotations

import socket
import threading
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest

from config.errors import ConfigError, MailboxError, MailboxLoginError
from service.mailbox import FolderState, ImapMailbox
from tests.support.services import free_port

pytestmark = pytest.mark.integration

BEIJING = timezone(timedelta(hours=8))
SAMPLES = Path("/work/shared/samples/mailbox")


def make_message(number: int, *, body_size: int = 200) -> bytes:
    """A small message with CRLF lines and 8-bit UTF-8 text, as real mail has."""
    body = ("案例 " * body_size).encode()
    return (
        (
            f"From: unit{number}@example.org\r\n"
            f"To: cases@example.org\r\n"
            f"Subject: recommendation {number}\r\n"
            f"Message-ID: <m{number}@example.org>\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n"
            "Content-Transfer-Encoding: 8bit\r\n"
            "\r\n"
        ).encode()
        + body
        + b"\r\n"
    )


@pytest.fixture
def account(dovecot):
    """A fresh user with an empty INBOX: (username, password)."""
    return dovecot.user("imap")


@pytest.fixture
def open_mailbox(dovecot, account):
    """Build an ImapMailbox for the fresh user over the plain loopback port."""
    username, password = account

    def build(**overrides):
        host = overrides.pop("host", dovecot.host)
        port = overrides.pop("port", dovecot.port)
        settings = {"username": username, "password": password, "security": "plain"}
        settings.update(overrides)
        return ImapMailbox(host, port, **settings)

    return build


def append_messages(dovecot, username, count, folder="INBOX"):
    return [dovecot.append(username, make_message(n), folder=folder) for n in range(1, count + 1)]


def flags_on_server(dovecot, username, uids, folder="INBOX"):
    with dovecot.client(username) as client:
        client.select_folder(folder, readonly=True)
        return client.get_flags(uids)


def bodies_on_server(dovecot, username, folder):
    with dovecot.client(username) as client:
        client.select_folder(folder, readonly=True)
        uids = client.search("ALL")
        return [item[b"BODY[]"] for item in client.fetch(uids, ["BODY.PEEK[]"]).values()]


# -- reading -----------------------------------------------------------------------------


def test_state_reports_uidvalidity_uidnext_and_message_count(dovecot, account, open_mailbox):
    username, _ = account
    append_messages(dovecot, username, 3)
    with dovecot.client(username) as client:
        expected_validity = client.folder_status("INBOX", ["UIDVALIDITY"])[b"UIDVALIDITY"]

    with open_mailbox() as mailbox:
        assert mailbox.state() == FolderState(uidvalidity=expected_validity, uidnext=4, exists=3)
        dovecot.append(username, make_message(4))
        assert mailbox.state().uidnext == 5


def test_account_names_the_server_user_and_port(dovecot, account, open_mailbox):
    username, _ = account
    mailbox = open_mailbox()
    assert mailbox.account == f"imap://{username}@127.0.0.1:{dovecot.port}"
    assert mailbox.stable_uids is True


def test_list_newer_returns_only_messages_above_the_uid_in_order(dovecot, account, open_mailbox):
    username, _ = account
    appended_at = datetime(2025, 7, 12, 10, 20, 18, tzinfo=BEIJING)
    for number in range(1, 5):
        dovecot.append(username, make_message(number), internaldate=appended_at)

    with open_mailbox() as mailbox:
        listed = mailbox.list_newer(2)

    assert [message.uid for message in listed] == [3, 4]
    assert [message.size for message in listed] == [len(make_message(3)), len(make_message(4))]
    assert all(message.internaldate == appended_at for message in listed)
    assert all(message.internaldate.tzinfo is not None for message in listed)


def test_nothing_newer_gives_an_empty_list_despite_the_star_quirk(dovecot, account, open_mailbox):
    username, _ = account
    append_messages(dovecot, username, 3)

    with open_mailbox() as mailbox:
        assert mailbox.list_newer(3) == []
        assert mailbox.list_newer(10) == []
        assert [message.uid for message in mailbox.list_newer(0)] == [1, 2, 3]


def test_an_empty_folder_lists_nothing(open_mailbox):
    with open_mailbox() as mailbox:
        assert mailbox.list_newer(0) == []


def test_since_leaves_out_messages_that_arrived_earlier(dovecot, account, open_mailbox):
    username, _ = account
    for day in (1, 10, 20):
        arrived = datetime(2025, 7, day, 12, 0, tzinfo=BEIJING)
        dovecot.append(username, make_message(day), internaldate=arrived)

    with open_mailbox() as mailbox:
        listed = mailbox.list_newer(0, since=date(2025, 7, 10))

    assert [message.internaldate.day for message in listed] == [10, 20]


def test_fetch_returns_byte_identical_messages_in_batches(dovecot, account, open_mailbox):
    username, _ = account
    originals = [make_message(number, body_size=number * 500) for number in range(1, 8)]
    uids = [dovecot.append(username, raw) for raw in originals]

    with open_mailbox() as mailbox:
        fetched = list(mailbox.fetch(uids, batch_size=3))

    assert [message.uid for message in fetched] == uids
    assert [message.raw for message in fetched] == originals
    assert [message.size for message in fetched] == [len(raw) for raw in originals]
    assert all(message.internaldate is not None for message in fetched)


@pytest.mark.skipif(not SAMPLES.is_dir(), reason=f"sample mailbox {SAMPLES} is not present")
def test_fetch_returns_the_sample_mailbox_byte_for_byte(dovecot, account, open_mailbox):
    username, _ = account
    originals = [path.read_bytes() for path in sorted(SAMPLES.glob("*.eml"))]
    for raw in originals:
        dovecot.append(username, raw)

    with open_mailbox() as mailbox:
        uids = [message.uid for message in mailbox.list_newer(0)]
        assert [message.raw for message in mailbox.fetch(uids, batch_size=2)] == originals


def test_fetch_leaves_messages_unseen(dovecot, account, open_mailbox):
    username, _ = account
    uids = append_messages(dovecot, username, 2)

    with open_mailbox() as mailbox:
        list(mailbox.fetch(uids))

    flags = flags_on_server(dovecot, username, uids)
    assert sorted(flags) == sorted(uids)  # both still there, so the check below is not vacuous
    assert all(b"\\Seen" not in flags[uid] for uid in uids)


def test_fetch_skips_a_uid_the_server_does_not_have(dovecot, account, open_mailbox):
    username, _ = account
    uids = append_messages(dovecot, username, 2)

    with open_mailbox() as mailbox:
        fetched = list(mailbox.fetch([*uids, 99]))

    assert [message.uid for message in fetched] == uids


def test_fetch_headers_returns_only_the_header_block(dovecot, account, open_mailbox):
    username, _ = account
    uids = append_messages(dovecot, username, 2)

    with open_mailbox() as mailbox:
        headers = mailbox.fetch_headers(uids)

    assert sorted(headers) == uids
    assert headers[1] == make_message(1).split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n"
    assert b"Subject: recommendation 2" in headers[2]


# -- post-processing actions --------------------------------------------------------------


@pytest.mark.parametrize("target", ["Processed", "已处理"])
def test_move_into_a_folder_that_does_not_exist_yet(dovecot, account, open_mailbox, target):
    username, _ = account
    uids = append_messages(dovecot, username, 3)

    with open_mailbox() as mailbox:
        mailbox.apply_after(uids[:2], f"move:{target}")
        assert mailbox.state().exists == 1

    assert bodies_on_server(dovecot, username, target) == [make_message(1), make_message(2)]
    assert bodies_on_server(dovecot, username, "INBOX") == [make_message(3)]


def test_move_into_an_existing_folder_adds_to_it(dovecot, account, open_mailbox):
    username, _ = account
    dovecot.append(username, make_message(0), folder="Processed")
    uids = append_messages(dovecot, username, 1)

    with open_mailbox() as mailbox:
        mailbox.apply_after(uids, "move:Processed")

    assert bodies_on_server(dovecot, username, "Processed") == [make_message(0), make_message(1)]


def test_move_without_the_move_extension_copies_and_expunges(dovecot, account, open_mailbox):
    username, _ = account
    uids = append_messages(dovecot, username, 2)

    with open_mailbox(host=dovecot.no_move_host) as mailbox:
        mailbox.apply_after(uids[:1], "move:Processed")
        assert mailbox.state().exists == 1

    assert bodies_on_server(dovecot, username, "Processed") == [make_message(1)]
    assert bodies_on_server(dovecot, username, "INBOX") == [make_message(2)]


def test_move_without_uidplus_leaves_the_original_flagged_deleted(dovecot, account, open_mailbox):
    username, _ = account
    uids = append_messages(dovecot, username, 2)

    with open_mailbox(host=dovecot.minimal_host) as mailbox:
        mailbox.apply_after(uids[:1], "move:Processed")

    assert bodies_on_server(dovecot, username, "Processed") == [make_message(1)]
    flags = flags_on_server(dovecot, username, uids)
    assert [b"\\Deleted" in flags[uid] for uid in uids] == [True, False]


@pytest.mark.parametrize(("action", "flag"), [("flag", b"\\Flagged"), ("seen", b"\\Seen")])
def test_flag_and_seen_set_the_flag_on_the_server(dovecot, account, open_mailbox, action, flag):
    username, _ = account
    uids = append_messages(dovecot, username, 3)

    with open_mailbox() as mailbox:
        mailbox.apply_after(uids[:2], action)

    flags = flags_on_server(dovecot, username, uids)
    assert [flag in flags[uid] for uid in uids] == [True, True, False]


def test_none_leaves_messages_untouched(dovecot, account, open_mailbox):
    username, _ = account
    uids = append_messages(dovecot, username, 2)

    with open_mailbox() as mailbox:
        mailbox.apply_after(uids, "none")
        assert mailbox.state().exists == 2

    assert flags_on_server(dovecot, username, uids) == dict.fromkeys(uids, ())


def test_an_unknown_action_is_a_configuration_error(open_mailbox):
    with open_mailbox() as mailbox, pytest.raises(ConfigError, match=r"mailbox\.after"):
        mailbox.apply_after([1], "delete")


# -- failures ----------------------------------------------------------------------------


def test_wrong_password_raises_login_error_naming_the_account(dovecot, account, open_mailbox):
    username, _ = account
    with pytest.raises(MailboxLoginError) as raised:
        open_mailbox(password="not-the-password").__enter__()

    message = str(raised.value)
    assert f"imap://{username}@127.0.0.1:{dovecot.port}" in message
    assert "mailbox.username / password" in message


def test_nothing_listening_raises_mailbox_error(open_mailbox):
    port = free_port()
    with pytest.raises(MailboxError, match="connect to") as raised:
        open_mailbox(port=port).__enter__()
    assert f":{port}" in str(raised.value)
    assert not isinstance(raised.value, MailboxLoginError)


def test_a_server_that_never_greets_times_out_as_mailbox_error(open_mailbox):
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        with pytest.raises(MailboxError, match="timed out"):
            open_mailbox(port=silent.getsockname()[1], timeout=0.5).__enter__()


def test_a_missing_folder_raises_mailbox_error_naming_the_setting(open_mailbox):
    with pytest.raises(MailboxError, match=r"mailbox\.folder"):
        open_mailbox(folder="NoSuchFolder").__enter__()


def test_server_stopped_mid_fetch_raises_mailbox_error(dovecot, account, open_mailbox):
    username, _ = account
    uids = append_messages(dovecot, username, 4)

    with open_mailbox() as mailbox:
        messages = mailbox.fetch(uids, batch_size=2)
        first = next(messages)
        next(messages)  # the first batch is done
        dovecot.stop()
        try:
            with pytest.raises(MailboxError) as raised:
                next(messages)
        finally:
            dovecot.start()

    assert first.raw == make_message(1)
    assert "the next poll will retry" in str(raised.value)
    with open_mailbox() as mailbox:  # the next poll resumes where it stopped
        assert [message.raw for message in mailbox.fetch(uids[2:])] == [
            make_message(3),
            make_message(4),
        ]


def test_server_stopped_between_calls_raises_mailbox_error(dovecot, open_mailbox):
    with open_mailbox() as mailbox:
        dovecot.stop()
        try:
            with pytest.raises(MailboxError):
                mailbox.list_newer(0)
        finally:
            dovecot.start()


def test_using_a_mailbox_before_entering_it_is_a_mailbox_error(open_mailbox):
    with pytest.raises(MailboxError, match="not open"):
        open_mailbox().state()


# -- waiting for mail --------------------------------------------------------------------


def test_idle_wakes_up_soon_after_another_client_appends(dovecot, account, open_mailbox):
    username, _ = account
    with open_mailbox() as mailbox:
        mailbox.list_newer(0)
        appender = threading.Timer(0.3, dovecot.append, args=(username, make_message(1)))
        started = time.monotonic()
        appender.start()
        try:
            arrived = mailbox.wait_for_new(timeout=60)
        finally:
            appender.join()
        waited = time.monotonic() - started
        assert [message.uid for message in mailbox.list_newer(0)] == [1]

    assert arrived is True  # announced: the timeout would have returned False
    assert waited < 60


def test_idle_returns_false_when_nothing_arrives(open_mailbox):
    with open_mailbox() as mailbox:
        mailbox.list_newer(0)
        started = time.monotonic()
        assert mailbox.wait_for_new(timeout=0.5) is False
        assert time.monotonic() - started >= 0.4  # it did wait (a lower bound never flakes)
        assert mailbox.state().exists == 0  # the connection is still usable afterwards


def test_mail_that_arrived_since_the_last_listing_wakes_at_once(dovecot, account, open_mailbox):
    username, _ = account
    with open_mailbox() as mailbox:
        mailbox.list_newer(0)
        dovecot.append(username, make_message(1))
        started = time.monotonic()
        assert mailbox.wait_for_new(timeout=300) is True
        assert time.monotonic() - started < 300  # not the timeout: the mail was noticed


def test_without_idle_waiting_returns_false_at_once(dovecot, account, open_mailbox):
    with open_mailbox(host=dovecot.minimal_host) as mailbox:
        started = time.monotonic()
        assert mailbox.wait_for_new(timeout=300) is False
        assert time.monotonic() - started < 300  # it did not sit out the timeout


# -- transport security ------------------------------------------------------------------


def read_everything(mailbox):
    with mailbox:
        listed = mailbox.list_newer(0)
        return [message.raw for message in mailbox.fetch([item.uid for item in listed])]


def test_ssl_on_the_imaps_port_works(dovecot, account, open_mailbox):
    username, _ = account
    append_messages(dovecot, username, 1)
    mailbox = open_mailbox(
        port=dovecot.imaps_port, security="ssl", ssl_context=dovecot.ssl_context()
    )
    assert read_everything(mailbox) == [make_message(1)]


def test_starttls_on_the_plain_port_works(dovecot, account, open_mailbox):
    username, _ = account
    append_messages(dovecot, username, 1)
    mailbox = open_mailbox(security="starttls", ssl_context=dovecot.ssl_context())
    assert read_everything(mailbox) == [make_message(1)]


def test_plain_on_loopback_works(dovecot, account, open_mailbox):
    username, _ = account
    append_messages(dovecot, username, 1)
    assert read_everything(open_mailbox(security="plain")) == [make_message(1)]


def test_an_untrusted_certificate_is_a_mailbox_error(dovecot, open_mailbox):
    mailbox = open_mailbox(port=dovecot.imaps_port, security="ssl")
    with pytest.raises(MailboxError, match="certificate"):
        mailbox.__enter__()


def test_ssl_against_the_plain_port_is_a_mailbox_error(dovecot, open_mailbox):
    with pytest.raises(MailboxError):
        open_mailbox(security="ssl", ssl_context=dovecot.ssl_context(), timeout=2).__enter__()


def test_an_unknown_security_setting_is_a_configuration_error(open_mailbox):
    with pytest.raises(ConfigError, match=r"mailbox\.security"):
        open_mailbox(security="tls")


def test_uidvalidity_change_is_visible_in_state(dovecot, account, open_mailbox):
    username, _ = account
    append_messages(dovecot, username, 1, folder="Cases")
    with open_mailbox(folder="Cases") as mailbox:
        before = mailbox.state().uidvalidity
    dovecot.recreate_folder(username, "Cases")
    with open_mailbox(folder="Cases") as mailbox:
        after = mailbox.state()
    assert after.uidvalidity != before
    assert after.exists == 0
