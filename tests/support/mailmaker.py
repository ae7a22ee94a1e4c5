"""Realistic recommendation mail for tests: python-docx forms, scanned PDFs with a red seal,
messages as bytes, a mail drop folder read by the real `DirectoryMailbox`, and exports.

Everything is built from scratch in the test, so that a test shows the whole story it tells.
"""

from __future__ import annotations

import csv
import email.policy
import email.utils
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from email.message import EmailMessage
from pathlib import Path

import docx
from docx.document import Document
from PIL import Image, ImageDraw

from service.bootstrap import App
from service.imports import ImportReport, import_submissions
from service.ingest import PollReport, poll
from service.mailbox import DirectoryMailbox

SHANGHAI = timezone(timedelta(hours=8))
RED = (214, 32, 40)
CASE_HEADER = ["序号", "案例名称", "申报单位", "案例类别", "申报编号", "备注"]
EXPORT_HEADER = [
    "申报编号",
    "案例名称",
    "申报单位",
    "统一社会信用代码",
    "案例类别",
    "所属领域",
    "申报方式",
    "推荐单位",
    "联系人",
    "手机",
    "电子邮箱",
    "提交时间",
    "参加智慧企业案例征集",
]


def at(day: int, hour: int = 10, month: int = 7) -> datetime:
    """A moment of the 2025 campaign, Shanghai time."""
    return datetime(2025, month, day, hour, 0, tzinfo=SHANGHAI)


@dataclass(frozen=True)
class Case:
    """One row of a form's case table, as the unit wrote it."""

    title: str
    applicant: str
    category: str = "新技术"
    ref: str = ""


@dataclass(frozen=True)
class Form:
    """What a unit writes on its recommendation form."""

    unit: str
    cases: Sequence[Case]
    contact: str = "王小明"
    email: str = "wang@example.org"
    year: int = 2025


def form_docx(form: Form) -> bytes:
    """The Word form (附件3) in the canonical layout: unit table, case table, opinion."""
    document = docx.Document()
    document.add_paragraph("附件3")
    document.add_paragraph(f"{form.year}信息通信行业科技创新案例推荐表")
    _table(
        document,
        [
            ["推荐单位", form.unit],
            ["联系人", form.contact, "职务", "主任", "办公电话", "010-12345678"],
            ["手机", "13800000000", "电子邮箱", form.email],
        ],
    )
    _table(
        document,
        [
            CASE_HEADER,
            *(
                [str(number), case.title, case.applicant, case.category, case.ref, ""]
                for number, case in enumerate(form.cases, start=1)
            ),
        ],
    )
    document.add_paragraph("推荐意见：")
    document.add_paragraph("同意推荐。")
    document.add_paragraph("推荐单位（盖章）")
    document.add_paragraph(f"{form.year}年7月20日")
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def _table(document: Document, rows: list[list[str]]) -> None:
    table = document.add_table(rows=len(rows), cols=max(len(row) for row in rows))
    for row_cells, values in zip(table.rows, rows, strict=False):
        for cell, value in zip(row_cells.cells, values, strict=False):
            cell.text = value


def scanned_pdf(*, seal: bool = True, lines: int = 12, marker: int = 0) -> bytes:
    """An image-only PDF as a scanner makes it: grey text lines and a red round seal.

    `marker` varies the picture so that two scans never share a SHA-256.
    """
    page = Image.new("RGB", (1240, 1754), "white")
    draw = ImageDraw.Draw(page)
    for line in range(lines):
        top = 200 + line * 80
        draw.rectangle((150, top, 1090 - (line * 37 + marker * 13) % 400, top + 18), fill=(60,) * 3)
    if seal:
        centre_x, centre_y, radius = 900, 1400, 140
        draw.ellipse(
            (centre_x - radius, centre_y - radius, centre_x + radius, centre_y + radius),
            outline=RED,
            width=8,
        )
        draw.regular_polygon((centre_x, centre_y, radius // 3), 5, fill=RED)
    buffer = io.BytesIO()
    page.save(buffer, format="PDF", resolution=150)
    return buffer.getvalue()


WORD = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


@dataclass(frozen=True)
class File:
    """An attachment: its name, bytes and content type."""

    filename: str
    data: bytes
    content_type: str = "application/octet-stream"


def word(filename: str, form: Form) -> File:
    """A Word form attachment."""
    return File(filename, form_docx(form), WORD)


def pdf(filename: str, *, seal: bool = True, marker: int = 0) -> File:
    """A scanned sealed-PDF attachment (see `scanned_pdf`)."""
    return File(filename, scanned_pdf(seal=seal, marker=marker), "application/pdf")


_counter = iter(range(1, 1_000_000))


def mail(
    sender: str,
    subject: str,
    files: Sequence[File] = (),
    *,
    received: datetime,
    body: str = "您好，附件是我单位的推荐材料，请查收。",
    in_reply_to: str | None = None,
    forwarded: bytes | None = None,
    name: str = "",
) -> bytes:
    """A message as the contact mailbox stores it, with the server's `Received:` stamp."""
    message = EmailMessage()
    message["Received"] = (
        f"from mail.example.org by mx.cace.example; {email.utils.format_datetime(received)}"
    )
    message["From"] = email.utils.formataddr((name, sender)) if name else sender
    message["To"] = "cases@cace.example"
    message["Subject"] = subject
    message["Date"] = email.utils.format_datetime(received)
    domain = sender.rpartition("@")[2] or "example.org"
    message["Message-ID"] = f"<m{next(_counter)}.{received:%Y%m%d%H%M}@{domain}>"
    if in_reply_to:
        message["In-Reply-To"] = in_reply_to
        message["References"] = in_reply_to
    message.set_content(body)
    for item in files:
        maintype, _, subtype = item.content_type.partition("/")
        message.add_attachment(
            item.data, maintype=maintype, subtype=subtype, filename=item.filename
        )
    if forwarded is not None:
        inner = email.message_from_bytes(forwarded, policy=email.policy.default)
        message.add_attachment(inner)
    return message.as_bytes()


def message_id_of(raw: bytes) -> str:
    """The Message-ID header of a built message."""
    for line in raw.split(b"\n"):
        if line.lower().startswith(b"message-id:"):
            return line.split(b":", 1)[1].strip().decode()
    raise ValueError("no Message-ID")


def qq_large_attachment_mail() -> bytes:
    """A QQ mail that sends its files as a "large attachment" link (needs a person)."""
    message = EmailMessage()
    when = email.utils.format_datetime(at(20, 14))
    message["Received"] = f"from mx.qq.example by mx.cace.example; {when}"
    message["From"] = "zhou@qq.example"
    message["To"] = "cases@cace.example"
    message["Subject"] = "推荐材料（超大附件）"
    message["Message-ID"] = "<big.1@qq.example>"
    message["Date"] = when
    message.set_content("推荐表太大，用超大附件发送。")
    message.add_alternative(
        '<div>推荐表太大，用超大附件发送。</div><div id="QQMailBigAttach">'
        '<a href="https://mail.qq.com/cgi-bin/ftnExs_download?k=7a6">甲-案例材料.zip</a>'
        "<span>(1.21G, 2025年08月20日 10:20 到期)</span></div>",
        subtype="html",
    )
    return message.as_bytes()


@dataclass
class MailDrop:
    """A folder of .eml files read by the real DirectoryMailbox: drop mail, then poll."""

    path: Path
    dropped: list[Path] = field(default_factory=list)

    def drop(self, raw: bytes) -> str:
        """Put a message in the folder; returns its Message-ID."""
        self.path.mkdir(parents=True, exist_ok=True)
        target = self.path / f"{len(self.dropped) + 1:04d}.eml"
        target.write_bytes(raw)
        self.dropped.append(target)
        return message_id_of(raw)

    def mailbox(self) -> DirectoryMailbox:
        """The mailbox the app opens on each poll."""
        return DirectoryMailbox(self.path)

    def arrive(self, app: App, raw: bytes) -> str:
        """Drop one message and poll, as if it had just arrived; returns its Message-ID."""
        message_id = self.drop(raw)
        report: PollReport = poll(app)
        assert report.ok, report.error
        return message_id


@dataclass(frozen=True)
class Online:
    """One row of the online system's export."""

    ref: str
    title: str
    applicant: str
    route: str = "推荐申报"
    recommender: str = ""
    email: str = ""
    contact: str = "李四"
    status: str = ""  # 申报状态, e.g. 已撤回; the column is written when a row has one


def export_csv(rows: Sequence[Online]) -> bytes:
    """The online-system export as UTF-8 CSV with the system's column titles."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    with_status = any(row.status for row in rows)
    writer.writerow([*EXPORT_HEADER, *(["申报状态"] if with_status else [])])
    for row in rows:
        writer.writerow(
            [
                row.ref,
                row.title,
                row.applicant,
                "",
                "新技术",
                "人工智能",
                row.route,
                row.recommender,
                row.contact,
                "13900000000",
                row.email or f"{row.ref.lower()}@applicant.example",
                "2025-07-10 10:00:00",
                "否",
                *([row.status or "已提交"] if with_status else []),
            ]
        )
    return buffer.getvalue().encode("utf-8")


def import_export(
    app: App,
    directory: Path,
    rows: Sequence[Online],
    name: str = "export.csv",
    **options: bool,
) -> ImportReport:
    """Write `rows` as an export file and import it as staff would; returns the report.
    `options`: `complete`, `confirm`, `dry_run` of `import_submissions`."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_bytes(export_csv(rows))
    return import_submissions(app, path, **options)


HEBEI = "中国联合网络通信有限公司河北省分公司"
SHANXI = "山西省通信行业协会"
JIANGXI = "江西省通信行业协会"
GUANGDONG = "广东省通信行业协会"

CAMPAIGN_SUBMISSIONS = (
    Online("A001", "基于大模型的智能客服系统", "联通数字科技有限公司", recommender=HEBEI),
    Online("A002", "5G+智慧工厂(一期)", "河北钢铁集团有限公司", recommender="河北联通"),
    Online("A003", "煤矿井下5G专网", "晋能控股装备制造集团有限公司", recommender=SHANXI),
    Online("A004", "赣江流域物联网水质监测", "江西水投科技有限公司", recommender=JIANGXI),
    Online("A005", "边缘计算视频分析平台", "广州视联科技有限公司", recommender=GUANGDONG),
    Online("A006", "县域数字乡村云平台", "四川蜀云科技有限公司", recommender="四川省通信行业协会"),
    Online("V001", "校园安全AI巡检", "杭州智巡科技有限公司", route="自愿申报"),
)


@dataclass
class Campaign:
    """A small campaign in messages: every state a submission can be in, and a late mail."""

    messages: list[bytes] = field(default_factory=list)

    @classmethod
    def build(cls) -> Campaign:
        """Hebei complete; Shanxi Word only; Jiangxi PDF only; Guangdong late; Sichuan nothing."""
        hebei = Form(
            HEBEI,
            [
                Case("《基于大模型的智能客服系统》", "联通数字科技"),
                Case("“5G+智慧工厂（一期）”", "河北 钢铁 集团有限公司"),
            ],
            email="wang@he.chinaunicom.example",
        )
        shanxi = Form(SHANXI, [Case("煤矿井下5G专网", "晋能控股装备制造集团")])
        guangdong = Form(GUANGDONG, [Case("边缘计算视频分析平台", "广州视联科技有限公司")])
        return cls(
            messages=[
                mail(
                    "wang@he.chinaunicom.example",
                    "河北联通推荐表",
                    [word("河北联通推荐表.docx", hebei), pdf("河北联通推荐表（盖章）.pdf")],
                    received=at(12),
                ),
                mail(
                    "office@sxca.example",
                    "山西省通信行业协会推荐表",
                    [word("推荐表.docx", shanxi)],
                    received=at(14),
                ),
                mail(
                    "office@jxca.example",
                    "推荐表盖章版",
                    [pdf("江西省通信行业协会推荐表（盖章）.pdf", marker=2)],
                    received=at(15),
                ),
                mail(
                    "office@gdca.example",
                    "广东省通信行业协会推荐表",
                    [word("推荐表.docx", guangdong), pdf("推荐表（盖章）.pdf", marker=3)],
                    received=at(2, month=8),
                ),
            ]
        )

    def run(self, app: App, drop: MailDrop, directory: Path) -> None:
        """Import the export, then let every message arrive."""
        import_export(app, directory, CAMPAIGN_SUBMISSIONS)
        for raw in self.messages:
            drop.arrive(app, raw)
