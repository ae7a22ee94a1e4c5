"""What each mail says, as plain data: one dataclass per mail kind, filled by the service.

The templates read these fields and nothing else. Kinds and states are the `Literal` strings
that interface.md publishes; their Chinese wording lives here once (the `*_LABELS` tables),
so that every template and every mail says the same thing the same way.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Literal, TypeAlias

MailKind = Literal["unit_receipt", "applicant_receipt", "result", "digest", "reminder"]
ReceiptMessageKind = Literal["recommendation", "other", "large_attachment_link"]
AttachmentKind = Literal["form_word", "form_pdf", "other"]
Seal = Literal["present", "absent", "unknown"]
MatchKind = Literal["ref", "name", "manual", "ambiguous", "none"]
ApplicantEvent = Literal["found", "complete"]
Result = Literal["selected", "not_selected"]

MAIL_KINDS: tuple[MailKind, ...] = (
    "unit_receipt",
    "applicant_receipt",
    "result",
    "digest",
    "reminder",
)

ATTACHMENT_KIND_LABELS: dict[str, str] = {
    "form_word": "推荐表(Word)",
    "form_pdf": "盖章推荐表(PDF)",
    "other": "其他材料",
}
SEAL_LABELS: dict[str, str] = {
    "present": "有公章",
    "absent": "未检出公章",
    "unknown": "无法判断",
}
MATCH_LABELS: dict[str, str] = {
    "ref": "已按申报编号匹配",
    "name": "已按案例名称和申报单位匹配",
    "manual": "已由工作人员确认",
    "ambiguous": "待人工核对",
    "none": "未找到在线申报",
}
# What the applicant still has to do when the service gives no sentence of its own.
MATCH_NEXT_STEPS: dict[str, str] = {
    "ref": "",
    "name": "",
    "manual": "",
    "ambiguous": "有多个相近的在线申报，工作人员将人工核对",
    "none": "未找到在线申报记录，请申报单位尽快在线提交",
}
MESSAGE_KIND_LABELS: dict[str, str] = {
    "recommendation": "推荐材料",
    "other": "其他来信",
    "auto_reply": "自动回复",
    "bounce": "退信",
    "large_attachment_link": "超大附件链接",
}
SUBMISSION_STATUS_LABELS: dict[str, str] = {
    "complete": "材料齐全",
    "awaiting_recommendation": "待推荐表",
    "awaiting_pdf": "待盖章PDF",
    "awaiting_word": "待Word推荐表",
    "withdrawn": "已撤回",
}
RESULT_LABELS: dict[str, str] = {"selected": "入选", "not_selected": "未入选"}

_SPACE_IN_CHINESE = re.compile(
    r"(?<=[\u3000-\u303f\u3400-\u9fff\uff00-\uffef])[ \t\u3000\u00a0]+"
    r"(?=[\u3000-\u303f\u3400-\u9fff\uff00-\uffef])"
)


_SMTP_CODE = re.compile(r"\b([45]\d\d)\b")


def delivery_failure_words(last_error: str | None) -> str:
    """Why a mail was not delivered, in Chinese: the server's refusal code, not its English."""
    found = _SMTP_CODE.search(last_error or "")
    return f"对方邮件服务器拒收（代码{found.group(1)}）" if found else "未能送达"


def tidy(value: str | None) -> str | None:
    """A value echoed from a form, shown without the stray spaces between Chinese characters
    that Word tables and typing leave (the register keeps it as written)."""
    if value is None:
        return None
    return _SPACE_IN_CHINESE.sub("", value).strip()


MESSAGE_STATUS_LABELS: dict[str, str] = {
    "pending": "待处理",
    "processed": "已处理",
    "needs_attention": "需人工处理",
}
OUTBOX_STATUS_LABELS: dict[str, str] = {
    "pending": "待发送",
    "unconfirmed": "未确认送达（将重发一次）",
    "sent": "已发送",
    "failed": "发送失败",
    "suppressed": "不发送",
}
OUTBOX_KIND_LABELS: dict[str, str] = {
    "unit_receipt": "推荐单位回执",
    "applicant_receipt": "申报单位回执",
    "result": "结果通知",
    "digest": "每日汇总",
    "reminder": "催办提醒",
}
RECOMMENDATION_STATE_LABELS: dict[str, str] = {"complete": "材料齐全", "incomplete": "材料未齐"}


@dataclass(frozen=True, kw_only=True)
class ReceivedFile:
    """One attachment of the acknowledged message: its name, kind and (PDF only) seal check."""

    filename: str
    kind: AttachmentKind
    seal: Seal | None = None

    @property
    def kind_label(self) -> str:
        """The kind in the words of the mail, e.g. 盖章推荐表(PDF)."""
        return ATTACHMENT_KIND_LABELS[self.kind]

    @property
    def seal_label(self) -> str | None:
        """The seal check in the words of the mail, or None when no check applies."""
        return None if self.seal is None else SEAL_LABELS[self.seal]


@dataclass(frozen=True, kw_only=True)
class CaseLine:
    """One case row of the form and how it matched an online submission."""

    row: int
    title: str
    applicant: str
    match: MatchKind
    submission_ref: str | None = None
    submission_title: str | None = None
    next_step: str | None = None  # what the applicant must still do; None: the usual sentence

    @property
    def matched(self) -> bool:
        """True when the row is tied to one online submission."""
        return self.match in ("ref", "name", "manual") and self.submission_ref is not None

    @property
    def match_label(self) -> str:
        """The match state in the words of the mail."""
        return MATCH_LABELS[self.match]

    @property
    def todo(self) -> str:
        """What the applicant must still do: the service's sentence, else the usual one."""
        if self.next_step is not None:
            return self.next_step
        return MATCH_NEXT_STEPS[self.match]


@dataclass(frozen=True, kw_only=True)
class LinkedFile:
    """A file sent as a webmail download link instead of a real attachment."""

    filename: str
    url: str
    expires: str | None = None


@dataclass(frozen=True, kw_only=True)
class UnitReceipt:
    """The receipt sent to the sender of a human-written message after it is ingested."""

    campaign_name: str
    deadline: datetime
    received_at: datetime
    late: bool
    message_subject: str
    message_kind: ReceiptMessageKind
    sender_name: str
    attachments: list[ReceivedFile] = field(default_factory=list)
    unit: str | None = None
    contact_name: str | None = None
    cases: list[CaseLine] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # e.g. "加盖公章的PDF版推荐表"
    large_attachment_links: list[LinkedFile] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    recommendation_complete: bool = False
    version: int = 1
    supersedes_earlier: bool = False
    pdf_mismatch: str | None = None  # the sealed PDF lists other cases than the Word form


@dataclass(frozen=True, kw_only=True)
class MissingCase:
    """A form row whose applicant has not submitted online yet."""

    row: int
    title: str
    applicant: str


@dataclass(frozen=True, kw_only=True)
class UnitReminder:
    """Staff's reminder to a recommending unit of what its recommendation still lacks."""

    campaign_name: str
    deadline: datetime
    unit: str
    contact_name: str | None
    version: int = 1
    missing_word: bool = False
    missing_pdf: bool = False
    cases: list[MissingCase] = field(default_factory=list)
    pdf_mismatch: str | None = None  # the sealed PDF lists other cases than the Word form


@dataclass(frozen=True, kw_only=True)
class ApplicantReceipt:
    """Tells an online submission's contact that a unit's form recommends their case."""

    campaign_name: str
    deadline: datetime
    submission_ref: str
    submission_title: str
    applicant: str
    contact_name: str | None
    unit: str  # the recommending unit
    event: ApplicantEvent
    complete: bool
    missing: list[str] = field(default_factory=list)


@dataclass(frozen=True, kw_only=True)
class ResultNotice:
    """Tells a submission's contact the staff's decision."""

    campaign_name: str
    submission_ref: str
    submission_title: str
    applicant: str
    contact_name: str | None
    result: Result
    note: str | None = None
    correction: bool = False  # this notice changes an earlier one

    @property
    def result_label(self) -> str:
        """The decision in the words of the mail: 入选 or 未入选."""
        return RESULT_LABELS[self.result]


@dataclass(frozen=True, kw_only=True)
class IntakeCounts:
    """What came in since the previous digest."""

    messages_by_kind: dict[str, int] = field(default_factory=dict)  # MessageKind -> count
    new_recommendations: int = 0

    @property
    def messages(self) -> int:
        """All messages of the day, whatever their kind."""
        return sum(self.messages_by_kind.values())


@dataclass(frozen=True, kw_only=True)
class CampaignTotals:
    """Where the campaign stands overall."""

    units: int = 0
    recommendations_complete: int = 0
    recommendations_incomplete: int = 0
    submissions_by_status: dict[str, int] = field(default_factory=dict)  # status -> count

    @property
    def submissions(self) -> int:
        """All online submissions known, whatever their status."""
        return sum(self.submissions_by_status.values())


@dataclass(frozen=True, kw_only=True)
class AttentionItem:
    """Something a person must do: its kind in Chinese, what and what to do, where, its page."""

    category: str  # e.g. "匹配待核对"
    summary: str  # one Chinese sentence: what it is and what to do
    where: str
    url: str | None = None  # the workspace page, when web.base_url is set


@dataclass(frozen=True, kw_only=True)
class FailedSend:
    """A mail that could not be delivered."""

    kind: MailKind
    recipients: list[str]
    subject: str
    reason: str
    attempts: int


@dataclass(frozen=True, kw_only=True)
class SuppressedAddress:
    """An address we no longer write to, and why (bounce, auto-reply, no-reply...)."""

    address: str
    reason: str


@dataclass(frozen=True, kw_only=True)
class LateItem:
    """Something that arrived after the deadline."""

    what: str
    received_at: datetime


@dataclass(frozen=True, kw_only=True)
class UnitActivity:
    """Who wrote since the previous digest (the unit when known, else the address) and what."""

    who: str
    sent: list[str] = field(default_factory=list)  # e.g. "Word推荐表《甲.docx》"


@dataclass(frozen=True, kw_only=True)
class RecommendationLine:
    """A recommendation new or completed since the previous digest; `missing` what it lacks."""

    unit: str
    version: int
    missing: list[str] = field(default_factory=list)


@dataclass(frozen=True, kw_only=True)
class OutageLine:
    """A passing failure still being retried (mailbox, mail server ...)."""

    what: str
    since: datetime | None = None
    retries: int = 0


@dataclass(frozen=True, kw_only=True)
class Digest:
    """The staff's daily digest: what happened since the previous one, and what to do."""

    campaign_name: str
    deadline: datetime
    now: datetime
    days_left: int
    since: datetime | None  # the previous digest; None: the first one, since the start
    period: IntakeCounts
    totals: CampaignTotals
    senders: list[UnitActivity] = field(default_factory=list)
    new_complete: list[RecommendationLine] = field(default_factory=list)
    new_incomplete: list[RecommendationLine] = field(default_factory=list)
    attention: list[AttentionItem] = field(default_factory=list)
    failed_sends: list[FailedSend] = field(default_factory=list)
    suppressed: list[SuppressedAddress] = field(default_factory=list)
    late: list[LateItem] = field(default_factory=list)
    outages: list[OutageLine] = field(default_factory=list)


MailContext: TypeAlias = UnitReceipt | ApplicantReceipt | ResultNotice | Digest | UnitReminder

CONTEXT_KINDS: dict[type[MailContext], MailKind] = {
    UnitReceipt: "unit_receipt",
    ApplicantReceipt: "applicant_receipt",
    ResultNotice: "result",
    Digest: "digest",
    UnitReminder: "reminder",
}


def kind_of(context: MailContext) -> MailKind:
    """The mail kind a context renders as; its templates are named after it."""
    return CONTEXT_KINDS[type(context)]


_SHANGHAI = timezone(timedelta(hours=8), "Asia/Shanghai")
_SAMPLE_CAMPAIGN = "2025信息通信行业科技创新案例征集"
_SAMPLE_DEADLINE = datetime(2025, 7, 31, 23, 59, 59, tzinfo=_SHANGHAI)


def sample_context(kind: MailKind) -> MailContext:
    """Realistic sample data for one mail kind: for previews and `Renderer.check()`."""
    if kind == "reminder":
        return UnitReminder(
            campaign_name=_SAMPLE_CAMPAIGN,
            deadline=_SAMPLE_DEADLINE,
            unit="中国移动通信集团浙江有限公司",
            contact_name="王磊",
            missing_pdf=True,
            cases=[
                MissingCase(
                    row=2, title="工业互联网标识解析赋能纺织产业链", applicant="浙江某纺织集团"
                )
            ],
        )
    if kind == "unit_receipt":
        return UnitReceipt(
            campaign_name=_SAMPLE_CAMPAIGN,
            deadline=_SAMPLE_DEADLINE,
            received_at=datetime(2025, 7, 20, 14, 5, tzinfo=_SHANGHAI),
            late=False,
            message_subject="中国移动通信集团浙江有限公司推荐表",
            message_kind="recommendation",
            sender_name="王磊",
            attachments=[
                ReceivedFile(filename="附件3-推荐表-浙江移动.docx", kind="form_word"),
                ReceivedFile(filename="推荐表(盖章).pdf", kind="form_pdf", seal="present"),
                ReceivedFile(filename="案例材料.zip", kind="other"),
            ],
            unit="中国移动通信集团浙江有限公司",
            contact_name="王磊",
            cases=[
                CaseLine(
                    row=1,
                    title="基于5G-A的智慧港口远程操控系统",
                    applicant="宁波舟山港股份有限公司",
                    match="ref",
                    submission_ref="ICT2025-0012",
                    submission_title="基于5G-A的智慧港口远程操控系统",
                ),
                CaseLine(
                    row=2,
                    title="工业互联网标识解析赋能纺织产业链",
                    applicant="浙江某某纺织科技有限公司",
                    match="ambiguous",
                ),
                CaseLine(
                    row=3,
                    title="大模型驱动的网络运维智能体",
                    applicant="杭州智维网络科技有限公司",
                    match="none",
                ),
            ],
            missing=[],
            recommendation_complete=True,
            version=1,
        )
    if kind == "applicant_receipt":
        return ApplicantReceipt(
            campaign_name=_SAMPLE_CAMPAIGN,
            deadline=_SAMPLE_DEADLINE,
            submission_ref="ICT2025-0012",
            submission_title="基于5G-A的智慧港口远程操控系统",
            applicant="宁波舟山港股份有限公司",
            contact_name="李娜",
            unit="中国移动通信集团浙江有限公司",
            event="found",
            complete=False,
            missing=["加盖公章的PDF版推荐表"],
        )
    if kind == "result":
        return ResultNotice(
            campaign_name=_SAMPLE_CAMPAIGN,
            submission_ref="ICT2025-0012",
            submission_title="基于5G-A的智慧港口远程操控系统",
            applicant="宁波舟山港股份有限公司",
            contact_name="李娜",
            result="selected",
            note="案例将收录于《2025信息通信行业科技创新案例集》。",
        )
    now = datetime(2025, 7, 21, 8, 30, tzinfo=_SHANGHAI)
    return Digest(
        campaign_name=_SAMPLE_CAMPAIGN,
        deadline=_SAMPLE_DEADLINE,
        now=now,
        days_left=10,
        since=datetime(2025, 7, 20, 8, 30, tzinfo=_SHANGHAI),
        period=IntakeCounts(
            messages_by_kind={"recommendation": 6, "other": 2, "auto_reply": 1},
            new_recommendations=5,
        ),
        senders=[
            UnitActivity(
                who="中国移动通信集团浙江有限公司",
                sent=["Word推荐表《附件3-推荐表-浙江移动.docx》", "盖章PDF《推荐表(盖章).pdf》"],
            ),
            UnitActivity(who="zhang@example.com", sent=["来信「关于申报材料的咨询」"]),
        ],
        new_complete=[RecommendationLine(unit="中国移动通信集团浙江有限公司", version=1)],
        new_incomplete=[
            RecommendationLine(unit="江苏省通信行业协会", version=2, missing=["盖章PDF"])
        ],
        outages=[
            OutageLine(
                what="发信服务器", since=datetime(2025, 7, 21, 7, 50, tzinfo=_SHANGHAI), retries=3
            )
        ],
        totals=CampaignTotals(
            units=23,
            recommendations_complete=18,
            recommendations_incomplete=5,
            submissions_by_status={
                "complete": 61,
                "awaiting_recommendation": 14,
                "awaiting_pdf": 4,
                "awaiting_word": 1,
            },
        ),
        attention=[
            AttentionItem(
                category="匹配待核对",
                summary="第2行「工业互联网标识解析赋能纺织产业链」有几项相近的在线申报："
                "「ICT2025-0031（得分 81）」、「ICT2025-0044（得分 78）」。"
                "请确认这一行对应哪一项。",
                where="中国移动通信集团浙江有限公司（第1版推荐表）",
                url="https://intake.example.org/units/3#row-2",
            ),
            AttentionItem(
                category="来信待处理",
                summary="推荐表《推荐表.doc》无法打开。请联系发件人用Word另存为.docx格式后重新发送。",
                where="zhang@example.com「推荐材料」（2025-07-20 16:12）",
            ),
        ],
        failed_sends=[
            FailedSend(
                kind="unit_receipt",
                recipients=["old-contact@example.net"],
                subject="【2025信息通信行业科技创新案例征集】回执：推荐材料已收到",
                reason="对方邮箱不存在",
                attempts=1,
            )
        ],
        suppressed=[
            SuppressedAddress(address="noreply@example.com", reason="对方邮箱退信，已停止发信")
        ],
        late=[],
    )
