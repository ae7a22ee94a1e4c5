"""Where mail comes from: the `Mailbox` seam, an IMAP implementation and a directory source.

The ingest pipeline talks only to the `Mailbox` protocol. `ImapMailbox` reads a real server
through imapclient and turns every library or socket failure into `MailboxError`;
`DirectoryMailbox` reads a folder of .eml files or a Maildir (demo, staff exports, tests).
Nothing here connects or reads files until a mailbox is entered (`with mailbox: ...`).
"""

from __future__ import annotations

import email.utils
import imaplib
import logging
import ssl
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timezone
from email.parser import BytesHeaderParser
from email.policy import compat32
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, Self

from imapclient import IMAPClient
from imapclient.exceptions import CapabilityError, IMAPClientError, LoginError

from config.errors import ConfigError, MailboxError, MailboxLoginError

logger = logging.getLogger(__name__)

Security = Literal["ssl", "starttls", "plain"]

LIST_FETCH_CHUNK = 500
"""UIDs per metadata FETCH in `list_newer`, keeping each command line well under limits."""


@dataclass(frozen=True)
class FolderState:
    """What the folder looks like now; a changed `uidvalidity` invalidates every stored UID."""

    uidvalidity: int
    uidnext: int
    exists: int


@dataclass(frozen=True)
class RemoteMessage:
    """A message known by UID and size, before its body is fetched."""

    uid: int
    size: int
    internaldate: datetime | None  # tz-aware


@dataclass(frozen=True)
class FetchedMessage:
    """A message's exact bytes as the mailbox holds them."""

    uid: int
    raw: bytes
    internaldate: datetime | None  # tz-aware
    size: int


class Mailbox(Protocol):
    """One folder of one mailbox, opened with `with`; everything the ingest pipeline needs."""

    account: str
    folder: str
    stable_uids: bool

    def __enter__(self) -> Self: ...

    def __exit__(self, *exc: object) -> None: ...

    def state(self) -> FolderState:
        """UIDVALIDITY, UIDNEXT and the message count of the folder, asked afresh."""
        ...

    def list_newer(self, above_uid: int, *, since: date | None = None) -> list[RemoteMessage]:
        """Messages with a UID above `above_uid` (and, if given, arrived on or after `since`)."""
        ...

    def fetch(self, uids: Sequence[int], *, batch_size: int = 50) -> Iterator[FetchedMessage]:
        """The raw bytes of `uids`, read `batch_size` at a time, without marking them seen."""
        ...

    def fetch_headers(self, uids: Sequence[int]) -> dict[int, bytes]:
        """Only the header block of each message (for messages too large to fetch whole)."""
        ...

    def apply_after(self, uids: Sequence[int], action: str) -> None:
        """The post-processing action: `move:<folder>`, `flag`, `seen` or `none`."""
        ...

    def wait_for_new(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for new mail; False at once if the source cannot tell."""
        ...


@dataclass(frozen=True)
class AfterAction:
    """A parsed `mailbox.after` setting: `kind` is move / flag / seen / none."""

    kind: Literal["move", "flag", "seen", "none"]
    folder: str | None = None


SIMPLE_AFTER_ACTIONS = {
    "flag": AfterAction("flag"),
    "seen": AfterAction("seen"),
    "none": AfterAction("none"),
}


def parse_after_action(action: str) -> AfterAction:
    """Read `move:<folder>`, `flag`, `seen` or `none`; anything else is a `ConfigError`."""
    text = action.strip()
    if text.startswith("move:"):
        folder = text[len("move:") :].strip()
        if folder:
            return AfterAction("move", folder)
    elif text in SIMPLE_AFTER_ACTIONS:
        return SIMPLE_AFTER_ACTIONS[text]
    raise ConfigError(
        f"mailbox.after = {action!r} is not one of move:<folder>, flag, seen, none",
        key="mailbox.after",
    )


def batched(items: Sequence[int], size: int) -> Iterator[Sequence[int]]:
    """Consecutive slices of at most `size` items."""
    if size < 1:
        raise ValueError(f"batch size must be at least 1, not {size}")
    for start in range(0, len(items), size):
        yield items[start : start + size]


def as_aware(moment: datetime | None) -> datetime | None:
    """A datetime with a plain `timezone` offset; a naive one is taken to be UTC."""
    if moment is None:
        return None
    offset = moment.utcoffset()
    if offset is None:
        return moment.replace(tzinfo=UTC)
    return moment.replace(tzinfo=timezone(offset))


# ---------------------------------------------------------------------------------------------
# IMAP


NETWORK_ERRORS: tuple[type[BaseException], ...] = (
    IMAPClientError,  # imaplib.IMAP4.error, and so also .abort and .readonly
    OSError,  # socket errors, timeouts, refused connections, ssl.SSLError
    EOFError,
)


class ImapMailbox:
    """One IMAP folder over imapclient, with every failure translated to `MailboxError`.

    `security` is "ssl" (IMAPS, default), "starttls" (plain connect, then upgrade; refused
    if the server does not offer it) or "plain" (no encryption: meant only for a server on
    loopback, such as the test Dovecot). `ssl_context` defaults to a verifying context.
    """

    stable_uids = True

    def __init__(
        self,
        host: str,
        port: int,
        *,
        username: str,
        password: str,
        folder: str = "INBOX",
        security: Security = "ssl",
        timeout: float = 30.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        if security not in ("ssl", "starttls", "plain"):
            raise ConfigError(
                f"mailbox.security = {security!r} is not one of ssl, starttls, plain",
                key="mailbox.security",
            )
        self.host = host
        self.port = port
        self.username = username
        self.folder = folder
        self.security: Security = security
        self.timeout = timeout
        self.account = f"imap://{username}@{host}:{port}"
        self._password = password
        self._ssl_context = ssl_context
        self._client: Any = None  # IMAPClient once entered; imapclient ships no types
        self._capabilities: frozenset[bytes] = frozenset()
        self._uidnext_when_listed = 0

    def __repr__(self) -> str:
        return f"ImapMailbox({self.account!r}, folder={self.folder!r}, security={self.security!r})"

    # -- connection --------------------------------------------------------------------

    def __enter__(self) -> Self:
        """Connect, secure, log in and select the folder."""
        with self._translated("connect to", hint="check mailbox.host, port and security"):
            client = IMAPClient(
                self.host,
                self.port,
                ssl=self.security == "ssl",
                ssl_context=self._ssl_context,
                timeout=self.timeout,
            )
        self._client = client
        try:
            # imapclient sets imaplib's debug level 5, which formats every fetched body for
            # a log line it then drops: a 7x slowdown on large fetches (docs/testing.md).
            client._imap.debug = 0
            client.normalise_times = False  # keep INTERNALDATE's own offset
            if self.security == "starttls":
                self._start_tls(client)
            self._login(client)
            with self._translated("select folder on", hint="check mailbox.folder"):
                selected = client.select_folder(self.folder)
                self._capabilities = frozenset(client.capabilities())
            self._uidnext_when_listed = int(selected.get(b"UIDNEXT", 0))
        except BaseException:
            self._disconnect()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        """Log out politely; a connection that is already gone is simply dropped."""
        self._disconnect()

    def _start_tls(self, client: Any) -> None:
        try:
            client.starttls(self._ssl_context)
        except CapabilityError as error:
            raise MailboxError(
                f"{self.account} does not offer STARTTLS — use mailbox.security = ssl "
                "with the IMAPS port, or fix the server's TLS setup"
            ) from error
        except NETWORK_ERRORS as error:
            hint = "check the server certificate and mailbox.security"
            raise self._error("start TLS with", error, hint=hint) from error

    def _login(self, client: Any) -> None:
        try:
            client.login(self.username, self._password)
        except LoginError as error:
            raise MailboxLoginError(
                f"login to {self.account} refused: {_describe(error)} — check "
                "mailbox.username / password"
            ) from error
        except NETWORK_ERRORS as error:
            raise self._error("log in to", error, hint="check the server and retry") from error

    def _disconnect(self) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        try:
            client.logout()
        except NETWORK_ERRORS:
            try:
                client.shutdown()
            except NETWORK_ERRORS as error:
                logger.debug("closing %s: %s", self.account, error)

    @property
    def _connected(self) -> Any:
        if self._client is None:
            raise MailboxError(f"{self.account} is not open — use `with mailbox:` first")
        return self._client

    @contextmanager
    def _translated(self, doing: str, *, hint: str = "the next poll will retry") -> Iterator[None]:
        """Turn imaplib, imapclient and socket errors into `MailboxError` (what/where/what now)."""
        try:
            yield
        except MailboxError:
            raise
        except NETWORK_ERRORS as error:
            raise self._error(doing, error, hint=hint) from error

    def _error(self, doing: str, error: BaseException, *, hint: str) -> MailboxError:
        where = f"{self.account} (folder {self.folder!r})"
        return MailboxError(f"could not {doing} {where}: {_describe(error)} — {hint}")

    # -- reading -----------------------------------------------------------------------

    def state(self) -> FolderState:
        """NOOP then STATUS of the selected folder: cheap enough to ask before every poll.

        The NOOP makes the server sync the selected folder first; without it Dovecot
        answers STATUS from this session's view, which misses mail delivered since.
        """
        client = self._connected
        with self._translated("read the folder state of"):
            client.noop()
            status = client.folder_status(self.folder, ["UIDVALIDITY", "UIDNEXT", "MESSAGES"])
        return FolderState(
            uidvalidity=int(status[b"UIDVALIDITY"]),
            uidnext=int(status[b"UIDNEXT"]),
            exists=int(status[b"MESSAGES"]),
        )

    def list_newer(self, above_uid: int, *, since: date | None = None) -> list[RemoteMessage]:
        """UID SEARCH for UIDs above `above_uid`, then their size and INTERNALDATE, by UID.

        `UID SEARCH UID n:*` always matches the highest UID, even one below n, so the
        result is filtered; `since` compares dates as the server does (IMAP SINCE).
        """
        client = self._connected
        criteria: list[Any] = ["UID", f"{above_uid + 1}:*"]
        if since is not None:
            criteria += ["SINCE", since]
        listed: list[RemoteMessage] = []
        with self._translated("list new messages in"):
            client.noop()  # sync the session's view so SEARCH sees mail delivered since
            self._uidnext_when_listed = int(
                client.folder_status(self.folder, ["UIDNEXT"])[b"UIDNEXT"]
            )
            found = sorted(uid for uid in client.search(criteria) if uid > above_uid)
            for chunk in batched(found, LIST_FETCH_CHUNK):
                answer = client.fetch(chunk, ["RFC822.SIZE", "INTERNALDATE"])
                for uid in chunk:
                    item = answer.get(uid)
                    if item is None:  # expunged between SEARCH and FETCH
                        continue
                    listed.append(
                        RemoteMessage(
                            uid=uid,
                            size=int(item.get(b"RFC822.SIZE", 0)),
                            internaldate=as_aware(item.get(b"INTERNALDATE")),
                        )
                    )
        return listed

    def fetch(self, uids: Sequence[int], *, batch_size: int = 50) -> Iterator[FetchedMessage]:
        """BODY.PEEK[] (does not set \\Seen) in batches; only one batch is held in memory.

        Yields in the order of `uids`; a UID the server no longer has is skipped with a log
        line. A connection lost between batches raises `MailboxError` from the iterator.
        """
        client = self._connected
        for batch in batched(list(uids), batch_size):
            with self._translated("fetch messages from"):
                answer = client.fetch(batch, ["BODY.PEEK[]", "INTERNALDATE"])
            for uid in batch:
                item = answer.get(uid)
                raw = None if item is None else item.get(b"BODY[]")
                if raw is None:
                    logger.warning("%s: UID %d vanished before it was fetched", self.account, uid)
                    continue
                yield FetchedMessage(
                    uid=uid,
                    raw=bytes(raw),
                    internaldate=as_aware(item.get(b"INTERNALDATE")),
                    size=len(raw),
                )
            del answer

    def fetch_headers(self, uids: Sequence[int]) -> dict[int, bytes]:
        """BODY.PEEK[HEADER] of each UID (the header block including its blank line)."""
        client = self._connected
        headers: dict[int, bytes] = {}
        for batch in batched(list(uids), LIST_FETCH_CHUNK):
            with self._translated("fetch headers from"):
                answer = client.fetch(batch, ["BODY.PEEK[HEADER]"])
            for uid in batch:
                block = answer.get(uid, {}).get(b"BODY[HEADER]")
                if block is not None:
                    headers[uid] = bytes(block)
        return headers

    # -- changing ----------------------------------------------------------------------

    def apply_after(self, uids: Sequence[int], action: str) -> None:
        """Move, flag or mark seen once a message is safely archived; `none` leaves it be.

        A move uses MOVE when the server offers it, else COPY + \\Deleted + UID EXPUNGE
        (without UIDPLUS the originals stay flagged \\Deleted rather than expunging other
        people's deletions). The target folder is created when missing.
        """
        parsed = parse_after_action(action)
        if parsed.kind == "none" or not uids:
            return
        client = self._connected
        targets = list(uids)
        hint = "check mailbox.after; the messages stay where they are until it works"
        with self._translated(f"apply after = {action!r} on", hint=hint):
            if parsed.kind == "flag":
                client.add_flags(targets, [b"\\Flagged"], silent=True)
            elif parsed.kind == "seen":
                client.add_flags(targets, [b"\\Seen"], silent=True)
            else:
                assert parsed.folder is not None
                self._move(client, targets, parsed.folder)

    def _move(self, client: Any, uids: list[int], target: str) -> None:
        if not client.folder_exists(target):
            client.create_folder(target)
            logger.info("%s: created folder %r for processed mail", self.account, target)
        if b"MOVE" in self._capabilities:
            client.move(uids, target)
            return
        client.copy(uids, target)
        client.add_flags(uids, [b"\\Deleted"], silent=True)
        if b"UIDPLUS" in self._capabilities:
            client.uid_expunge(uids)
        else:
            logger.warning(
                "%s offers neither MOVE nor UIDPLUS: %d message(s) copied to %r and left "
                "flagged \\Deleted in %r",
                self.account,
                len(uids),
                target,
                self.folder,
            )

    # -- waiting -----------------------------------------------------------------------

    def wait_for_new(self, timeout: float) -> bool:
        """IMAP IDLE for up to `timeout` seconds; True as soon as a new message is announced.

        Also True at once when UIDNEXT moved since the last `list_newer` (mail that arrived
        while we were fetching is not announced again by IDLE). Without IDLE: False at once,
        and the scheduler's next poll finds the mail. Keep `timeout` under the server's IDLE
        limit (29 minutes by RFC 2177).
        """
        client = self._connected
        if b"IDLE" not in self._capabilities:
            return False
        with self._translated("wait for new mail in"):
            client.noop()
            uidnext = int(client.folder_status(self.folder, ["UIDNEXT"])[b"UIDNEXT"])
            if uidnext > self._uidnext_when_listed:
                return True
            client.idle()
            arrived = False
            try:
                deadline = time.monotonic() + timeout
                while not arrived and (remaining := deadline - time.monotonic()) > 0:
                    responses = client.idle_check(timeout=remaining)
                    arrived = _announces_new_mail(responses)
            finally:
                _, late_responses = client.idle_done()
            return arrived or _announces_new_mail(late_responses)


def _announces_new_mail(responses: Sequence[Any]) -> bool:
    """IDLE responses look like `(3, b'EXISTS')`; EXISTS is how a server announces arrivals."""
    return any(
        isinstance(response, tuple) and len(response) >= 2 and response[1] == b"EXISTS"
        for response in responses
    )


def _describe(error: BaseException) -> str:
    """A short human account of a library error, naming its kind when the text is empty."""
    if isinstance(error, TimeoutError):
        return "timed out"
    if isinstance(error, ConnectionRefusedError):
        return "connection refused (is the server running and the port right?)"
    if isinstance(error, ssl.SSLCertVerificationError):
        return f"certificate not trusted ({error.verify_message})"
    if isinstance(error, imaplib.IMAP4.abort):
        return f"connection lost ({error})"
    text = str(error).strip()
    if text.startswith("b'") and text.endswith("'"):
        text = text[2:-1]
    return text or type(error).__name__


# ---------------------------------------------------------------------------------------------
# Directory


HEADER_READ_LIMIT = 1 << 20
"""Stop looking for the end of a header block after this many bytes."""


class DirectoryMailbox:
    """A folder of .eml files, or a Maildir (cur/ + new/), read-only.

    Messages are ordered by relative path; a UID is the 1-based position in that order, so
    it is not durable (`stable_uids = False`: ingest dedups by content). UIDVALIDITY is
    always 1. INTERNALDATE is the date of the top-most `Received:` header, else the file's
    mtime. `apply_after` only honours `none`: staff exports are read-only, so other actions
    are logged and skipped.
    """

    stable_uids = False
    uidvalidity = 1

    def __init__(self, path: Path, folder: str = "") -> None:
        self.path = Path(path)
        self.folder = folder
        self.account = f"dir:{self.path.resolve()}"
        self._files: list[Path] = []

    def __repr__(self) -> str:
        return f"DirectoryMailbox({self.account!r}, folder={self.folder!r})"

    def __enter__(self) -> Self:
        """Check the directory exists and take a snapshot of its messages."""
        self._files = self._scan()
        return self

    def __exit__(self, *exc: object) -> None:
        """Nothing to close."""
        self._files = []

    @property
    def root(self) -> Path:
        """The directory holding the folder's messages.

        "" and "INBOX" mean the path itself (unless a subdirectory of that name exists);
        another name is a subdirectory, or in a Maildir++ the `.name` folder.
        """
        if self.folder and (self.path / self.folder).is_dir():
            return self.path / self.folder
        if self.folder and self.folder.upper() != "INBOX":
            return self.path / f".{self.folder}"
        return self.path

    @staticmethod
    def is_maildir(directory: Path) -> bool:
        """A Maildir has cur/ or new/ subdirectories."""
        return (directory / "cur").is_dir() or (directory / "new").is_dir()

    def _scan(self) -> list[Path]:
        root = self.root
        if not root.is_dir():
            raise MailboxError(
                f"{self.account}: folder {self.folder!r} ({root}) is not a directory — "
                "check mailbox.path / folder"
            )
        if self.is_maildir(root):
            candidates = [
                entry
                for sub in ("cur", "new")
                if (root / sub).is_dir()
                for entry in (root / sub).iterdir()
                if entry.is_file() and not entry.name.startswith(".")
            ]
        else:
            candidates = [entry for entry in root.rglob("*.eml") if entry.is_file()]
        return sorted(candidates, key=lambda entry: entry.relative_to(root).as_posix())

    def _file(self, uid: int) -> Path | None:
        if 1 <= uid <= len(self._files):
            return self._files[uid - 1]
        return None

    def state(self) -> FolderState:
        """Rescan the directory; UIDNEXT is one past the message count."""
        self._files = self._scan()
        return FolderState(
            uidvalidity=self.uidvalidity, uidnext=len(self._files) + 1, exists=len(self._files)
        )

    def list_newer(self, above_uid: int, *, since: date | None = None) -> list[RemoteMessage]:
        """Messages after position `above_uid`; reads only headers (for the Received date)."""
        listed: list[RemoteMessage] = []
        for uid in range(max(above_uid, 0) + 1, len(self._files) + 1):
            path = self._files[uid - 1]
            try:
                size = path.stat().st_size
                internaldate = self._internaldate(path)
            except OSError as error:
                raise MailboxError(f"{self.account}: cannot read {path}: {error}") from error
            if since is not None and internaldate.date() < since:
                continue
            listed.append(RemoteMessage(uid=uid, size=size, internaldate=internaldate))
        return listed

    def fetch(self, uids: Sequence[int], *, batch_size: int = 50) -> Iterator[FetchedMessage]:
        """Each file's bytes, one at a time (batch_size is irrelevant for local files)."""
        del batch_size
        for uid in uids:
            path = self._file(uid)
            if path is None:
                logger.warning("%s: no message at position %d", self.account, uid)
                continue
            try:
                raw = path.read_bytes()
                internaldate = self._internaldate(path, header_block=read_header_block(raw))
            except OSError as error:
                raise MailboxError(f"{self.account}: cannot read {path}: {error}") from error
            yield FetchedMessage(uid=uid, raw=raw, internaldate=internaldate, size=len(raw))

    def fetch_headers(self, uids: Sequence[int]) -> dict[int, bytes]:
        """The header block of each file, read without loading the body."""
        headers: dict[int, bytes] = {}
        for uid in uids:
            path = self._file(uid)
            if path is None:
                continue
            try:
                headers[uid] = read_file_header_block(path)
            except OSError as error:
                raise MailboxError(f"{self.account}: cannot read {path}: {error}") from error
        return headers

    def apply_after(self, uids: Sequence[int], action: str) -> None:
        """Only `none` applies: a directory source is read-only, so other actions are logged."""
        parsed = parse_after_action(action)
        if parsed.kind != "none" and uids:
            logger.info(
                "%s is read-only: after = %r skipped for %d message(s)",
                self.account,
                action,
                len(uids),
            )

    def wait_for_new(self, timeout: float) -> bool:
        """A directory cannot announce new mail: False at once, without sleeping."""
        del timeout
        return False

    def _internaldate(self, path: Path, *, header_block: bytes | None = None) -> datetime:
        block = read_file_header_block(path) if header_block is None else header_block
        received = received_date(block)
        if received is not None:
            return received
        return datetime.fromtimestamp(path.stat().st_mtime, tz=UTC)


def read_header_block(raw: bytes) -> bytes:
    """The bytes up to and including the first empty line (the whole input if none)."""
    crlf = raw.find(b"\r\n\r\n")
    # Look for a bare-LF blank line only before the CRLF one: never scan a whole body.
    lf = raw.find(b"\n\n", 0, crlf if crlf >= 0 else len(raw))
    ends = [position + width for position, width in ((crlf, 4), (lf, 2)) if position >= 0]
    return raw[: min(ends)] if ends else raw


def read_file_header_block(path: Path, *, chunk_size: int = 65536) -> bytes:
    """Read a message file only as far as the end of its headers."""
    collected = bytearray()
    with path.open("rb") as stream:
        while len(collected) < HEADER_READ_LIMIT:
            chunk = stream.read(chunk_size)
            if not chunk:
                break
            collected += chunk
            block = read_header_block(bytes(collected))
            if len(block) < len(collected):
                return block
    return read_header_block(bytes(collected))


def received_date(header_block: bytes) -> datetime | None:
    """The date stamped by the top-most parseable `Received:` header, tz-aware, else None.

    The top-most header was added last, by the server that delivered the message to us, so
    it is the closest thing a file has to IMAP's INTERNALDATE.
    """
    headers = BytesHeaderParser(policy=compat32).parsebytes(header_block)
    for value in headers.get_all("Received", []):
        _, separator, stamp = str(value).rpartition(";")
        if not separator:
            continue
        try:
            moment = email.utils.parsedate_to_datetime(" ".join(stamp.split()))
        except (TypeError, ValueError, IndexError):
            continue
        aware = as_aware(moment)
        if aware is not None:
            return aware
    return None


if TYPE_CHECKING:  # both sources must keep satisfying the seam the pipeline relies on
    _imap_satisfies_protocol: type[Mailbox] = ImapMailbox
    _directory_satisfies_protocol: type[Mailbox] = DirectoryMailbox


__all__ = [
    "AfterAction",
    "DirectoryMailbox",
    "FetchedMessage",
    "FolderState",
    "ImapMailbox",
    "Mailbox",
    "RemoteMessage",
    "parse_after_action",
    "received_date",
]
