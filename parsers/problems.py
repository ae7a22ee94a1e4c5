"""The catalogue of problems: one code each, with its parameters and its texts per reader.

A problem is data (`parsers.model.Problem(code, params)`); what a person reads is rendered
from this table: `staff` (Chinese, says what to do), `sender` (Chinese, only for codes that
concern the sender, in their terms), `log` (English, for operators' logs). Pure data: no
settings, no I/O; parsers, notifications and service all import it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

Severity = Literal["info", "warning", "error"]
Reader = Literal["staff", "sender", "log"]
Audience = Literal["staff", "sender", "operator"]


@dataclass(frozen=True)
class ProblemSpec:
    """One code: how serious, whom it concerns, its parameter names and its three texts."""

    severity: Severity
    audience: frozenset[Audience]
    params: tuple[str, ...]
    staff: str
    log: str
    sender: str | None = None


def _spec(
    severity: Severity,
    audience: str,
    params: str,
    *,
    staff: str,
    log: str,
    sender: str | None = None,
) -> ProblemSpec:
    return ProblemSpec(
        severity=severity,
        audience=frozenset(audience.split()),  # type: ignore[arg-type]
        params=tuple(params.split()),
        staff=staff,
        log=log,
        sender=sender,
    )


CATALOGUE: dict[str, ProblemSpec] = {
    # --- the message itself -----------------------------------------------------------
    "message_unreadable": _spec(
        "error",
        "staff",
        "detail",
        staff="这封邮件无法解析，系统已原样存档。请在邮箱中直接打开阅读，必要时请发件人重新发送。",
        log="the message cannot be read: {detail}",
    ),
    "message_is_outlook_file": _spec(
        "error",
        "staff",
        "detail",
        staff="这是一个微软邮件软件保存的.msg文件，而不是一封普通邮件，系统无法读取。"
        "请在邮件软件中把它另存为.eml格式后再放入邮箱，或直接打开阅读。",
        log="an Outlook .msg file, not an RFC 822 message: save it as .eml",
    ),
    "message_too_large": _spec(
        "warning",
        "staff",
        "size_mb limit_mb",
        staff="这封邮件约{size_mb}兆，超过系统自动下载的上限（{limit_mb}兆），未下载，仍留在邮箱中。"
        "请在邮箱中打开并手工保存其中的材料。",
        log="message of {size_mb} MB is over the {limit_mb} MB limit "
        "(mailbox.max_message_size): not downloaded; it stays in the mailbox",
    ),
    "headers_damaged": _spec(
        "warning",
        "staff",
        "",
        staff="这封邮件的信头已损坏，系统尽量读出了内容。请核对发件人和主题是否正确。",
        log="the message's header block is damaged; what could be read was kept",
    ),
    "multipart_without_boundary": _spec(
        "warning",
        "staff",
        "",
        staff="这封邮件的结构不完整（分段标记缺失），附件可能未能全部读出。请在邮箱中打开核对附件。",
        log="a multipart message without a boundary; parts may be missing",
    ),
    "unknown_charset": _spec(
        "info",
        "staff",
        "charset",
        staff="这封邮件正文的文字编码无法识别或与内容不符，正文可能有个别乱码。"
        "请在邮箱中打开来信核对正文。",
        log="a body labelled {charset!r} cannot be decoded with it or any charset it is "
        "mistaken for; some characters are replacement marks",
    ),
    "date_out_of_range": _spec(
        "info",
        "staff",
        "header value",
        staff="这封邮件的发信日期明显不合理，收信时间以邮箱服务器记录为准，无需处理。",
        log="the {header} header {value!r} is out of range; arrival time does not depend on it",
    ),
    "unreadable_date": _spec(
        "info",
        "staff",
        "value",
        staff="这封邮件的发信日期无法识别，收信时间以邮箱服务器记录为准，无需处理。",
        log="the Date header {value!r} cannot be read; arrival time does not depend on it",
    ),
    "control_characters": _spec(
        "info",
        "staff",
        "header value",
        staff="这封邮件的信头含有换行或控制字符，已替换为空格，无需处理。",
        log="the {header} {value!r} held line breaks or control characters; replaced by spaces",
    ),
    "unreadable_addresses": _spec(
        "info",
        "staff",
        "header",
        staff="这封邮件的收发件人地址写法过于复杂，只保留了其中的邮箱地址，请核对发件人。",
        log="the {header} header is too convoluted to read fully; only bare addresses were kept",
    ),
    "too_many_parts": _spec(
        "warning",
        "staff sender",
        "limit",
        staff="这封邮件包含的部分超过{limit}个，其余部分未读取。请在邮箱中打开核对，或请发件人分几封邮件发送。",
        sender="您的邮件包含的文件过多，部分内容未能读取。请分几封邮件发送，每封少带几个文件。",
        log="the message has more than {limit} MIME parts; the rest were not read",
    ),
    "too_deep": _spec(
        "warning",
        "staff",
        "limit",
        staff="这封邮件层层嵌套超过{limit}层，更深处的内容未读取。请在邮箱中打开核对。",
        log="the message nests MIME parts more than {limit} levels deep; deeper parts not read",
    ),
    "attachment_mentioned_missing": _spec(
        "warning",
        "staff sender",
        "",
        staff="邮件正文提到了附件，但邮件中没有附件。请联系发件人补发附件。",
        sender="您的来信提到随信附有文件，但我们没有收到任何附件。请将文件作为邮件附件重新发送。",
        log="the mail says files are attached but none are",
    ),
    "question_needs_reply": _spec(
        "info",
        "staff",
        "",
        staff="来信提出了问题，需要工作人员回复。请阅读来信并答复发件人。",
        log="the sender asks a question that needs a reply",
    ),
    # --- containers -------------------------------------------------------------------
    "zip_unreadable": _spec(
        "warning",
        "staff sender",
        "file detail",
        staff="压缩包《{file}》无法打开，已作为一个文件存档。请联系发件人重新发送其中的文件。",
        sender="压缩包《{file}》无法打开。请将其中的文件直接作为邮件附件重新发送。",
        log="{file}: the zip archive cannot be read ({detail}); kept as one file",
    ),
    "zip_too_many_entries": _spec(
        "warning",
        "staff",
        "file count limit",
        staff="压缩包《{file}》含{count}个文件，只查看了前{limit}个。请在存档中打开核对其余文件。",
        log="{file}: the archive lists {count} entries; only the first {limit} were looked at",
    ),
    "zip_too_deep": _spec(
        "warning",
        "staff",
        "file inner limit",
        staff="压缩包《{file}》中的《{inner}》嵌套过深，未解开。请在存档中手工打开核对。",
        log="{file}: the archive {inner} is nested more than {limit} archives deep; kept unopened",
    ),
    "zip_encrypted": _spec(
        "warning",
        "staff sender",
        "archive file",
        staff="压缩包《{archive}》中的《{file}》设有密码，无法解开。请联系发件人发送不加密的文件。",
        sender="压缩包《{archive}》中的《{file}》设有密码，我们无法打开。请发送不加密码的文件。",
        log="{archive}: {file} is password-protected and was not extracted",
    ),
    "zip_size_mismatch": _spec(
        "warning",
        "staff sender",
        "archive file size",
        staff="压缩包《{archive}》中的《{file}》已损坏，未解开。请联系发件人重新发送该文件。",
        sender="压缩包《{archive}》中的《{file}》已损坏，无法打开。请将该文件直接作为邮件附件重新发送。",
        log="{archive}: {file} inflates to more than its declared {size} bytes; not extracted",
    ),
    "zip_entry_unreadable": _spec(
        "warning",
        "staff sender",
        "archive file detail",
        staff="压缩包《{archive}》中的《{file}》无法解开。请联系发件人重新发送该文件。",
        sender="压缩包《{archive}》中的《{file}》无法打开。请将该文件直接作为邮件附件重新发送。",
        log="{archive}: {file} cannot be extracted ({detail})",
    ),
    "zip_bomb": _spec(
        "warning",
        "staff sender",
        "archive file detail",
        staff="压缩包《{archive}》中的《{file}》解压后体积异常巨大，为安全起见未解开。请联系发件人直接发送文件本身。",
        sender="压缩包《{archive}》中的《{file}》无法解开。请将所需文件直接作为邮件附件发送，不要压缩。",
        log="{archive}: {file} would inflate past the allowed size ({detail}); not extracted",
    ),
    "tnef_unreadable": _spec(
        "warning",
        "staff sender",
        "file detail",
        staff="《{file}》是无法读取的微软邮件专用格式附件。请联系发件人改用普通格式重新发送。",
        sender="您的邮件附件以微软邮件专用格式（{file}）发出，我们无法打开。"
        "请在邮件软件中改为普通格式（网页格式或纯文本）后重新发送附件。",
        log="{file}: the Outlook TNEF attachment cannot be read ({detail}); kept as one file",
    ),
    "tnef_empty": _spec(
        "warning",
        "staff sender",
        "file",
        staff="《{file}》是微软邮件专用格式附件，其中没有找到文件。请联系发件人改用普通格式重新发送。",
        sender="您的邮件附件以微软邮件专用格式（{file}）发出，其中没有可读取的文件。"
        "请在邮件软件中改为普通格式（网页格式或纯文本）后重新发送附件。",
        log="{file}: no file or text in this Outlook TNEF attachment; kept as one file",
    ),
    "tnef_too_many_files": _spec(
        "warning",
        "staff",
        "file limit",
        staff="《{file}》含有超过{limit}个文件，其余未读取。请在存档中打开核对。",
        log="{file}: more than {limit} files; the rest were skipped",
    ),
    # --- Word forms -------------------------------------------------------------------
    "word_unreadable": _spec(
        "error",
        "staff sender",
        "file detail",
        staff="推荐表《{file}》无法打开。请联系发件人用Word另存为.docx格式后重新发送。",
        sender="推荐表《{file}》无法打开。请用Word或WPS另存为.docx格式后重新发送。",
        log="{file}: cannot be read as a Word form: {detail}",
    ),
    "word_legacy_unconverted": _spec(
        "error",
        "staff sender operator",
        "file detail",
        staff="推荐表《{file}》是旧版Word格式，本系统暂时无法读取。请联系发件人另存为.docx格式后"
        "重新发送，或请系统管理员安装文档转换组件。",
        sender="推荐表《{file}》是旧版Word格式，我们无法读取。请用Word或WPS另存为.docx格式后重新发送。",
        log="{file}: a legacy Word/WPS document that could not be converted: {detail}",
    ),
    "no_unit": _spec(
        "warning",
        "staff sender",
        "file",
        staff="推荐表《{file}》没有填写推荐单位。请核对，必要时请发件人补填后重新发送。",
        sender="推荐表《{file}》中没有填写推荐单位名称。请补填后重新发送推荐表。",
        log="{file}: the form does not name its recommending unit",
    ),
    "no_cases": _spec(
        "warning",
        "staff sender",
        "file",
        staff="推荐表《{file}》的案例表是空的。请联系发件人补填案例后重新发送。",
        sender="推荐表《{file}》中没有填写任何推荐案例。请补填案例后重新发送推荐表。",
        log="{file}: the form lists no cases",
    ),
    "no_case_table": _spec(
        "warning",
        "staff sender",
        "file",
        staff="推荐表《{file}》中找不到案例表（序号、案例名称、申报单位）。请打开核对，"
        "必要时请发件人使用征集通知所附的推荐表模板重新填写。",
        sender="推荐表《{file}》中找不到案例列表（序号、案例名称、申报单位）。"
        "请使用征集通知所附的推荐表模板填写后重新发送。",
        log="{file}: no case table (序号 / 案例名称 / 申报单位) found",
    ),
    "case_without_title": _spec(
        "warning",
        "staff sender",
        "file row",
        staff="推荐表《{file}》第{row}行没有填写案例名称。请联系发件人补填。",
        sender="推荐表《{file}》第{row}行没有填写案例名称。请补填后重新发送推荐表。",
        log="{file}: case row {row} names no case title",
    ),
    # --- PDFs -------------------------------------------------------------------------
    "pdf_unreadable": _spec(
        "error",
        "staff sender",
        "file detail",
        staff="PDF文件《{file}》无法打开。请联系发件人重新导出盖章推荐表的PDF后发送。",
        sender="PDF文件《{file}》无法打开。请重新扫描或导出盖章推荐表的PDF后发送。",
        log="{file}: cannot be read as a PDF: {detail}",
    ),
    "pdf_encrypted": _spec(
        "warning",
        "staff sender",
        "file detail",
        staff="PDF文件《{file}》设有密码，无法读取内容。请联系发件人发送不加密码的PDF。",
        sender="PDF文件《{file}》设有密码，我们无法打开。请发送不加密码的PDF。",
        log="{file}: encrypted and cannot be read: {detail}",
    ),
    "pdf_irregular": _spec(
        "info",
        "staff",
        "file detail",
        staff="PDF文件《{file}》格式不规范，已自动修复后读取。请打开核对内容和公章。",
        log="{file}: the PDF is irregular and was repaired: {detail}",
    ),
    "pdf_too_many_pages": _spec(
        "info",
        "staff",
        "file pages limit",
        staff="PDF文件《{file}》共{pages}页，只读取了前{limit}页。请打开核对其余页面。",
        log="{file}: has {pages} pages; only the first {limit} were read",
    ),
    "pdf_time_budget": _spec(
        "info",
        "staff",
        "file seconds",
        staff="PDF文件《{file}》内容过于复杂，未能读完。请打开核对内容和公章。",
        log="{file}: reading stopped after the {seconds} s budget",
    ),
    "pdf_partly_scanned": _spec(
        "info",
        "staff",
        "file scanned pages",
        staff="PDF文件《{file}》共{pages}页，其中{scanned}页是扫描图片，无法读出文字。请打开核对。",
        log="{file}: {scanned} of {pages} pages are images without text",
    ),
    "ocr_failed": _spec(
        "warning",
        "staff",
        "file attempts why detail",
        staff="扫描件《{file}》尝试识别{attempts}次均未成功（{why}），系统没有从中读出推荐单位和案例。"
        "请打开这份PDF，人工核对推荐单位、案例名称和公章。",
        log="{file}: OCR failed after {attempts} attempts: {detail}",
    ),
    "scan_being_read": _spec(
        "info",
        "staff sender",
        "file",
        staff="扫描件《{file}》还在识别文字，回执已先发出，说明正在识别；识别完成后系统自动补记，无需处理。",
        sender="您发来的扫描件《{file}》正在识别文字，推荐单位和案例信息识别后将自动登记，请勿重复发送。",
        log="{file}: the receipt went out before the scan was read (ocr.max_wait passed)",
    ),
    "pdf_seal_check_failed": _spec(
        "info",
        "staff",
        "file detail",
        staff="未能检查PDF文件《{file}》上的公章。请打开查看是否盖章。",
        log="{file}: the seal check failed: {detail}",
    ),
    "pdf_content_too_big": _spec(
        "info",
        "staff",
        "file page",
        staff="PDF文件《{file}》第{page}页内容过大，未读取文字。请打开核对。",
        log="{file}: page {page}: text not read (too big)",
    ),
    "pdf_text_unreadable": _spec(
        "info",
        "staff",
        "file page detail",
        staff="PDF文件《{file}》第{page}页的文字无法读取。请打开核对。",
        log="{file}: page {page}: text unreadable: {detail}",
    ),
    "pdf_content_unreadable": _spec(
        "info",
        "staff",
        "file page detail",
        staff="PDF文件《{file}》第{page}页已损坏，公章检查可能不完整。请打开查看。",
        log="{file}: page {page}: content unreadable: {detail}",
    ),
    "pdf_image_undecodable": _spec(
        "info",
        "staff",
        "file page detail",
        staff="PDF文件《{file}》第{page}页有图片无法解码，公章检查可能不完整。请打开查看。",
        log="{file}: page {page}: an image cannot be decoded: {detail}",
    ),
    "ocr_page_too_large": _spec(
        "info",
        "staff",
        "file page width_cm height_cm",
        staff="PDF文件《{file}》第{page}页尺寸异常（约{width_cm}×{height_cm}厘米），已缩小后识别文字，"
        "识别结果可能不全。请打开原件核对推荐单位和案例。",
        log="{file}: page {page} is {width_cm} x {height_cm} cm; rendered smaller for OCR, "
        "the reading may be incomplete",
    ),
    "pdf_mismatch": _spec(
        "warning",
        "staff sender",
        "missing extra",
        staff="盖章PDF与Word推荐表的案例不一致（PDF缺少：{missing}；PDF多出：{extra}）。"
        "请打开两份文件核对，必要时请推荐单位重新发送一致的版本。",
        sender="盖章PDF与Word版推荐表所列案例不一致（PDF中缺少：{missing}；PDF中多出：{extra}）。"
        "请按Word版推荐表重新盖章，将与之一致的盖章PDF发送至本邮箱；如Word版有误，请一并发送更正后的Word版。",
        log="the sealed PDF and the Word form disagree: missing {missing}, extra {extra}",
    ),
    # --- what a scan read by OCR gives to pairing -------------------------------------
    "read_from_scan": _spec(
        "info",
        "staff",
        "",
        staff="此行由扫描件识别得出，请核对：对照盖章PDF检查案例名称和申报单位是否识别正确。",
        log="row read by OCR from a scanned form",
    ),
    "scan_unit_untrusted": _spec(
        "info",
        "staff",
        "file unit",
        staff="从扫描件《{file}》识别出的推荐单位“{unit}”与已知的推荐单位都对不上，"
        "未用它对应推荐表。请打开PDF核对；如属某个推荐单位，请在工作台为它选择推荐表。",
        log="{file}: the unit read from the scan ({unit}) matches no known unit; "
        "not used for pairing",
    ),
    # --- pairing ----------------------------------------------------------------------
    "pdf_waiting_for_word": _spec(
        "info",
        "staff sender",
        "file",
        staff="盖章PDF《{file}》还没有对应的Word推荐表，正在等待。请在工作台为它选择所属的推荐表，"
        "或等待推荐单位发来Word版。",
        sender="盖章PDF《{file}》已收到，Word版推荐表尚未收到。请尽快将Word版推荐表发送至本邮箱。",
        log="{file}: no Word form it belongs to yet; it waits for its Word form",
    ),
    "awaiting_word": _spec(
        "info",
        "staff sender",
        "unit",
        staff="{unit}只发来了盖章PDF，还缺Word版推荐表。请等待，或联系推荐单位补发Word版。",
        sender="{unit}的盖章PDF推荐表已收到，Word版推荐表尚未收到。请尽快将Word版推荐表发送至本邮箱。",
        log="{unit}: only the sealed PDF arrived; waiting for the Word form",
    ),
    "unit_from_history": _spec(
        "info",
        "staff",
        "file unit",
        staff="推荐表《{file}》没有填写推荐单位，已按发件人此前的来信记为{unit}。请核对是否正确。",
        log="{file}: the form names no recommending unit; taken as {unit} from the sender's "
        "earlier mail",
    ),
    "unit_unread": _spec(
        "warning",
        "staff sender",
        "file",
        staff="推荐表《{file}》没有填写推荐单位，发件人此前也没有来信，暂按发件人地址登记。"
        "请联系发件人发送填写了推荐单位的推荐表。",
        sender="推荐表《{file}》中没有填写推荐单位名称，暂按您的邮箱地址登记。请补填推荐单位后重新发送推荐表。",
        log="{file}: the form names no recommending unit and the sender sent none before; "
        "filed under the sender",
    ),
    # --- matching ---------------------------------------------------------------------
    "ref_not_in_export": _spec(
        "info",
        "staff",
        "ref",
        staff="表上的申报编号{ref}不在在线申报名单中，已改按案例名称和申报单位匹配。请核对编号是否写错。",
        log="ref {ref} is not in the online export; matched by names instead",
    ),
    "title_differs": _spec(
        "info",
        "staff",
        "ref title score",
        staff="表上的案例名称与{ref}在线申报的名称（{title}）差别较大（相似度{score}）。请核对。",
        log="the form's title differs from {ref}'s ({title}): title {score}",
    ),
    "applicant_differs": _spec(
        "info",
        "staff",
        "ref applicant score",
        staff="表上的申报单位与{ref}在线申报的单位（{applicant}）差别较大（相似度{score}）。请核对。",
        log="the form's applicant differs from {ref}'s ({applicant}): applicant {score}",
    ),
    "names_point_elsewhere": _spec(
        "warning",
        "staff",
        "name_ref ref",
        staff="案例名称和申报单位对应{name_ref}，而表上的申报编号是{ref}。请确认应对应哪一项在线申报。",
        log="the names point to {name_ref}, the ref to {ref}: staff decide",
    ),
    "candidates_too_close": _spec(
        "warning",
        "staff",
        "best best_score rival rival_score",
        staff="{best}（得分{best_score}）与{rival}（得分{rival_score}）难以区分。请确认应对应哪一项在线申报。",
        log="{best} ({best_score}) and {rival} ({rival_score}) are too close: staff decide",
    ),
    "candidate_uncertain": _spec(
        "warning",
        "staff",
        "ref score",
        staff="最接近的在线申报是{ref}（得分{score}），但把握不足。请确认是否对应。",
        log="best candidate {ref} ({score}) is not certain enough: staff decide",
    ),
    "recommender_other_unit": _spec(
        "info",
        "staff",
        "ref recommender",
        staff="{ref}在线申报时填写的推荐单位是{recommender}，与本推荐表不同。请核对。",
        log="{ref} names {recommender} as its recommending unit online",
    ),
    "ref_claimed": _spec(
        "warning",
        "staff",
        "ref row",
        staff="{ref}已由本表第{row}行对应，两行不能对应同一项在线申报。请确认本行应对应哪一项。",
        log="{ref} is already claimed by row {row} of this form: staff decide",
    ),
    # --- online-system exports --------------------------------------------------------
    "uscc_missing": _spec(
        "info",
        "staff",
        "row ref",
        staff="在线申报{ref}（第{row}行）没有填写统一社会信用代码。请联系申报单位补充。",
        log="row {row} ({ref}): no unified social credit code",
    ),
    "uscc_invalid": _spec(
        "info",
        "staff",
        "row ref uscc",
        staff="在线申报{ref}（第{row}行）的统一社会信用代码{uscc}校验不通过。记录已保留，请联系申报单位核实。",
        log="row {row} ({ref}): unified social credit code {uscc} fails its check character",
    ),
    "time_unreadable": _spec(
        "info",
        "staff",
        "row value",
        staff="名单第{row}行的提交时间（{value}）无法识别。请核对导出文件。",
        log="row {row}: submission time {value!r} is not a time",
    ),
    "yes_no_unreadable": _spec(
        "info",
        "staff",
        "row value",
        staff="名单第{row}行的“{value}”既不是“是”也不是“否”。请核对导出文件。",
        log="row {row}: {value!r} is neither 是 nor 否",
    ),
    "import_row_no_ref": _spec(
        "warning",
        "staff",
        "row",
        staff="第{row}行没有填写申报编号，未导入。请在表格中补上编号后重新导入。",
        log="row {row}: no 申报编号",
    ),
    "import_row_duplicate_ref": _spec(
        "warning",
        "staff",
        "row ref first",
        staff="第{row}行的申报编号{ref}与第{first}行重复，只导入第{first}行。请删去重复的一行。",
        log="row {row}: duplicate 申报编号 {ref} (first on row {first})",
    ),
    "import_row_missing": _spec(
        "warning",
        "staff",
        "row ref column",
        staff="第{row}行（{ref}）没有填写{column}，未导入。请补填后重新导入。",
        log="row {row} ({ref}): no {column}",
    ),
    "import_row_unknown_route": _spec(
        "warning",
        "staff",
        "row ref value",
        staff="第{row}行（{ref}）的申报方式“{value}”无法识别，未导入。请改为“推荐申报”或“自愿申报”后重新导入。",
        log="row {row} ({ref}): unknown 申报方式 {value!r}",
    ),
    "import_row_unknown_ref": _spec(
        "warning",
        "staff",
        "row ref",
        staff="第{row}行的申报编号{ref}不在在线申报名单中，未导入。请核对编号，或先导入最新的在线申报名单。",
        log="row {row}: no submission {ref}",
    ),
    # --- results sheets ---------------------------------------------------------------
    "result_unknown": _spec(
        "warning",
        "staff",
        "row ref value",
        staff="第{row}行（{ref}）的结果“{value}”无法识别，未导入。请填写“入选”或“未入选”；"
        "尚未评定的请留空。",
        log="row {row} ({ref}): unknown 结果 {value!r} (expected 入选 or 未入选)",
    ),
    "result_change_not_sent": _spec(
        "info",
        "staff",
        "ref old new",
        staff="{ref}的结果由“{old}”改为“{new}”，申报单位此前已收到原结果通知；本次只记录，不发更正邮件。"
        "如需通知，请勾选“发送更正通知”后重新导入。",
        log="{ref}: decision changed from {old} to {new}; "
        "no correction sent (use --resend-changed)",
    ),
    "result_no_email": _spec(
        "info",
        "staff",
        "ref",
        staff="{ref}在线申报时没有填写电子邮箱，无法发送结果通知。请另行告知申报单位。",
        log="{ref}: no e-mail address; no result mail",
    ),
    # --- the service itself -----------------------------------------------------------
    "internal_error": _spec(
        "error",
        "staff operator",
        "detail",
        staff="系统处理这封邮件时出错，邮件已原样存档。请在邮箱中直接阅读处理，并告知系统管理员。",
        log="internal error: {detail}",
    ),
    "record_failed": _spec(
        "error",
        "staff operator",
        "detail",
        staff="这封邮件已存档，但登记时出错。请告知系统管理员，问题解决后系统会重新处理。",
        log="could not be recorded: {detail}",
    ),
    "transient_failure": _spec(
        "info",
        "operator",
        "what",
        staff="{what}暂时中断，系统会自动重试，无需处理；如长时间未恢复，请告知系统管理员。",
        log="{what}: transient failure, retried automatically",
    ),
    "mail_unconfirmed": _spec(
        "warning",
        "staff operator",
        "",
        staff="发信服务器没有确认收下这封邮件，对方可能没有收到。请在发出邮件中查看，必要时重新发送。",
        log="the SMTP server did not confirm the mail",
    ),
    "unclassified": _spec(
        "info",
        "staff",
        "detail",
        staff="系统记录了一条未归类的问题，请打开这封邮件核对。",
        log="{detail}",
    ),
}


class _Blank(dict[str, Any]):
    """Parameters for `str.format_map`: a missing one renders as nothing, never raises."""

    def __missing__(self, key: str) -> str:
        return ""


def spec_of(code: str) -> ProblemSpec:
    """The catalogue entry of `code`; unknown codes read as `unclassified`."""
    return CATALOGUE.get(code, CATALOGUE["unclassified"])


def render(code: str, params: Mapping[str, Any], reader: Reader) -> str | None:
    """The text of a problem for one reader; None for `sender` when it does not concern them."""
    spec = spec_of(code)
    template = {"staff": spec.staff, "sender": spec.sender, "log": spec.log}[reader]
    if template is None or (reader == "sender" and "sender" not in spec.audience):
        return None
    values = _Blank({key: "" if value is None else value for key, value in params.items()})
    if code not in CATALOGUE and reader == "log":
        values["detail"] = values.get("detail") or code
    try:
        return template.format_map(values)
    except (ValueError, TypeError):  # a format spec meeting a blank: fall back to plain names
        return template.format_map(_Blank({key: str(value) for key, value in values.items()}))
