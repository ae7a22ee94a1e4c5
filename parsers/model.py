"""Plain data that the parsers return: no database, no settings, no I/O.

These dataclasses are the contract between `parsers` and `service`. Kinds and states are
`Literal` strings whose values are the ones `interface.md` publishes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Literal

from parsers.problems import Reader, render, spec_of

MessageKind = Literal["recommendation", "other", "auto_reply", "bounce", "large_attachment_link"]
AttachmentKind = Literal["form_word", "form_pdf", "other"]
Seal = Literal["present", "absent", "unknown"]
Route = Literal["recommended", "voluntary"]
Result = Literal["selected", "not_selected"]


@dataclass(frozen=True)
class Problem:
    """Something a person should know about an input: a catalogue code and its parameters.

    What each reader sees is rendered from `parsers.problems.CATALOGUE`; the stored form is
    `{"code": ..., "params": {...}}` (`as_json` / `from_json`).
    """

    code: str
    params: Mapping[str, Any] = field(default_factory=dict, hash=False)

    def text(self, reader: Reader) -> str | None:
        """The text for `reader` (staff / sender / log); None when it is not for the sender."""
        return render(self.code, self.params, reader)

    @property
    def message(self) -> str:
        """The English log text (what the old string problems said)."""
        return render(self.code, self.params, "log") or self.code

    @property
    def staff_text(self) -> str:
        """The Chinese text for staff: what it is and what to do."""
        return render(self.code, self.params, "staff") or ""

    @property
    def sender_text(self) -> str | None:
        """The Chinese text for the sender, or None when the problem does not concern them."""
        return render(self.code, self.params, "sender")

    @property
    def severity(self) -> str:
        """info / warning / error, from the catalogue."""
        return spec_of(self.code).severity

    def with_params(self, **extra: Any) -> Problem:
        """The same problem with parameters added (existing ones win)."""
        return Problem(self.code, {**extra, **self.params})

    def as_json(self) -> dict[str, Any]:
        """The stored form: `{code, params}`."""
        return {"code": self.code, "params": dict(self.params)}

    @classmethod
    def from_json(cls, item: object) -> Problem:
        """Read a stored problem; a bare string (never migrated) becomes `unclassified`."""
        if isinstance(item, Mapping) and "code" in item:
            params = item.get("params") or {}
            return cls(str(item["code"]), dict(params) if isinstance(params, Mapping) else {})
        return cls("unclassified", {"detail": str(item)})


@dataclass
class Attachment:
    """One file carried by a message, decoded; `container` says where it was found."""

    filename: str  # as the sender named it, decoded, for display
    safe_name: str  # sanitised: no path parts, no control characters
    content_type: str
    data: bytes
    sha256: str
    kind: AttachmentKind = "other"
    container: str | None = None  # e.g. "zip:材料.zip", "tnef:winmail.dat", "message/rfc822"

    @property
    def size(self) -> int:
        return len(self.data)


@dataclass(frozen=True)
class LargeAttachmentLink:
    """A download link a webmail put in place of a real attachment (QQ 超大附件, 网易 网盘)."""

    provider: str  # "qq" | "netease" | "other"
    filename: str
    url: str
    expires: str | None = None


@dataclass(frozen=True)
class Bounce:
    """What a delivery-status notification says failed."""

    failed_recipients: tuple[str, ...]
    status: str | None = None  # e.g. "5.1.1"


@dataclass
class ParsedMessage:
    """A message decoded and classified."""

    message_id: str | None
    subject: str
    sender: str  # bare address, lower case; "" when absent
    sender_name: str
    reply_to: list[str]
    to: list[str]
    cc: list[str]
    date: datetime | None  # the sender's own Date:, informative only
    received_at: datetime | None  # newest Received: header date, if any
    in_reply_to: str | None
    references: list[str]
    text: str
    html: str
    attachments: list[Attachment]
    kind: MessageKind
    no_reply: bool  # the sender must never be answered (noreply@, MAILER-DAEMON, ...)
    bounce: Bounce | None = None
    links: list[LargeAttachmentLink] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    automated: bool = False  # a machine sent it on its own (list, newsletter, notice)
    needs_reply: bool = False  # a person must answer (a question, files mentioned but missing)


@dataclass(frozen=True)
class Contact:
    """The contact person a recommending unit names on its form."""

    name: str | None = None
    title: str | None = None
    phone: str | None = None
    mobile: str | None = None
    email: str | None = None


@dataclass(frozen=True)
class CaseRow:
    """One row of a form's case table, as written on the form."""

    row: int  # 序号 when readable, else the 1-based position
    title: str
    applicant: str
    category: str | None = None
    ref: str | None = None  # 申报编号 when the unit wrote it
    rank: str | None = None  # 推荐排序
    note: str | None = None  # 备注


@dataclass
class WordForm:
    """A recommendation form read from a Word document."""

    unit: str | None
    contact: Contact
    cases: list[CaseRow]
    title: str | None = None
    opinion: str | None = None  # 推荐意见
    signed_on: date | None = None
    format: str = "docx"  # docx | doc | wps
    problems: list[Problem] = field(default_factory=list)


@dataclass
class PdfForm:
    """What a (usually sealed, often scanned) PDF of a form tells us."""

    pages: int
    text: str
    scanned: bool  # image-only pages, no usable text layer
    seal: Seal
    seal_evidence: str  # one sentence: why present / absent / unknown
    encrypted: bool = False
    unit: str | None = None
    titles: list[str] = field(default_factory=list)
    cases: list[CaseRow] = field(default_factory=list)  # the case table, from the text layer
    problems: list[Problem] = field(default_factory=list)

    @property
    def reads_as_form(self) -> bool:
        """Whether the text layer holds a whole form: the unit and a case table."""
        return bool(self.unit) and bool(self.cases)


@dataclass(frozen=True)
class SubmissionRecord:
    """One row of the online system's export."""

    row_number: int
    ref: str  # 申报编号
    title: str
    applicant: str
    uscc: str | None
    uscc_valid: bool
    category: str | None
    field: str | None
    route: Route
    recommender: str | None
    contact: str | None
    mobile: str | None
    email: str | None
    submitted_at: datetime | None
    smart_enterprise: bool | None = None  # 参加智慧企业案例征集
    withdrawn: bool | None = None  # the status column says 撤回; None: the file has no status


@dataclass(frozen=True)
class RejectedRow:
    """A row an importer could not accept, with its 1-based sheet row number."""

    row_number: int
    reason: str  # English, for logs and the command line
    problem: Problem | None = None  # what staff read (Chinese), from the catalogue


@dataclass
class SubmissionExport:
    """An export file read: accepted records, rejected rows, warnings."""

    records: list[SubmissionRecord]
    rejected: list[RejectedRow]
    problems: list[Problem] = field(default_factory=list)


@dataclass(frozen=True)
class Decision:
    """A staff decision on one submission, as its row says.

    A blank cell changes nothing (None); a cell saying 清空 clears what is stored (`CLEARED`).
    `result` is None only when the row clears the result. `note` is for the applicant (it
    reaches the result mail); `remark` is staff's own and never leaves the register.
    """

    row_number: int
    ref: str
    result: Result | None
    note: str | None = None
    remark: str | None = None


CLEARED = ""
"""A `Decision` note or remark that clears the stored one (the cell said 清空)."""


@dataclass
class DecisionFile:
    """A results file read; `blank_rows` are rows whose 结果 is blank (no decision yet)."""

    decisions: list[Decision]
    rejected: list[RejectedRow]
    blank_rows: list[int] = field(default_factory=list)
