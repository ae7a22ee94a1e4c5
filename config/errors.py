"""The one exception root of intake and its branches.

Every error we raise derives from `IntakeError` and from the stdlib type it resembles, and
carries the fields a person needs to act on it (which file, which message, which key).
"""

from __future__ import annotations


class IntakeError(Exception):
    """Root of every error intake raises on purpose."""


class ConfigError(IntakeError, ValueError):
    """A setting is unknown, invalid or unreadable; `key` and `source` say which and where."""

    def __init__(self, message: str, *, key: str | None = None, source: str | None = None) -> None:
        super().__init__(message)
        self.key = key
        self.source = source


class ParseError(IntakeError, ValueError):
    """Bytes could not be read as what they claim to be; `filename` names the input.

    `code` is the problem catalogue's code when it is not the reader's usual one
    (e.g. `word_legacy_unconverted` rather than `word_unreadable`).
    """

    def __init__(
        self, message: str, *, filename: str | None = None, code: str | None = None
    ) -> None:
        super().__init__(message)
        self.filename = filename
        self.code = code


class MailboxError(IntakeError, ConnectionError):
    """The mailbox could not be reached, logged into or read."""


class MailboxLoginError(MailboxError):
    """The mailbox refused our credentials: a person must fix the configuration."""


class StorageError(IntakeError, OSError):
    """The archive or the database could not store something."""


class DeliveryError(IntakeError, ConnectionError):
    """Outgoing mail could not be handed over; `permanent` says whether to retry.

    `unconfirmed`: the message may have been taken all the same (the connection was lost
    or timed out during DATA, before the server's reply): resending it may duplicate it.
    """

    def __init__(
        self,
        message: str,
        *,
        permanent: bool,
        code: int | None = None,
        unconfirmed: bool = False,
    ) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.code = code
        self.unconfirmed = unconfirmed


class TemplateError(IntakeError, ValueError):
    """A mail template is missing or fails to render; `template` names it."""

    def __init__(self, message: str, *, template: str | None = None) -> None:
        super().__init__(message)
        self.template = template


class ConfirmationNeededError(IntakeError, ValueError):
    """A change too large to make unasked (e.g. many withdrawals at once): nothing was done.

    `items` names what would change, so the person can check before confirming.
    """

    def __init__(self, message: str, *, items: list[str]) -> None:
        super().__init__(message)
        self.items = items
