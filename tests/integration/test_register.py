"""The register through the real pipeline: states, corrections, row matching, both backends."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from service.bootstrap import App
from service.todo import todo_items
from tests.support.apps import make_app, register_of
from tests.support.mailmaker import (
    CAMPAIGN_SUBMISSIONS,
    GUANGDONG,
    HEBEI,
    JIANGXI,
    SHANXI,
    Campaign,
    Case,
    Form,
    MailDrop,
    Online,
    at,
    import_export,
    mail,
    pdf,
    word,
)

pytestmark = pytest.mark.integration


def by_ref(register: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {row["ref"]: row for row in register["submissions"]}


def current_of(register: dict[str, Any], unit: str) -> dict[str, Any]:
    (row,) = [r for r in register["recommendations"] if r["current"] and r["unit"] == unit]
    return row


def applicant_receipts(register: dict[str, Any]) -> Counter[str]:
    return Counter(
        row["submission_ref"] for row in register["outbox"] if row["kind"] == "applicant_receipt"
    )


def test_every_submission_state_is_derived_as_the_domain_defines_it(
    app: App, drop: MailDrop, tmp_path: Path
):
    Campaign.build().run(app, drop, tmp_path / "exports")

    register = register_of(app)
    states = {ref: row["status"] for ref, row in by_ref(register).items()}
    assert states == {
        "A001": "complete",  # Word and sealed PDF in one mail
        "A002": "complete",
        "A003": "awaiting_pdf",  # the unit's Word is in, its PDF not yet
        "A004": "awaiting_word",  # the unit's sealed PDF is in, its Word not yet
        "A005": "complete",  # late, but complete
        "A006": "awaiting_recommendation",  # nothing from its unit
        "V001": "complete",  # voluntary: complete on its own
    }
    hebei = current_of(register, HEBEI)
    assert hebei["complete"] is True
    assert by_ref(register)["A001"]["recommendation_id"] == hebei["id"]
    assert current_of(register, SHANXI)["complete"] is False
    assert [row["filename"] for row in register["unplaced_pdfs"]] == [
        f"{JIANGXI}推荐表（盖章）.pdf"
    ]


def test_a_message_after_the_deadline_is_late_and_so_is_its_recommendation(
    app: App, drop: MailDrop, tmp_path: Path
):
    Campaign.build().run(app, drop, tmp_path / "exports")

    register = register_of(app)
    late = [row["sender"] for row in register["messages"] if row["late"]]
    assert late == ["office@gdca.example"]
    assert current_of(register, GUANGDONG)["late"] is True
    assert current_of(register, HEBEI)["late"] is False
    assert "late" in [item.kind for item in todo_items(register)]
    (receipt,) = [
        row
        for row in register["outbox"]
        if row["kind"] == "unit_receipt" and row["to"] == ["office@gdca.example"]
    ]
    assert "逾期" in receipt["subject"]


def test_a_correction_supersedes_the_form_and_matching_follows_the_new_version(
    app: App, drop: MailDrop, tmp_path: Path
):
    import_export(
        app,
        tmp_path / "exports",
        [
            Online("A001", "基于大模型的智能客服系统", "联通数字科技有限公司", recommender=HEBEI),
            Online("A002", "工业互联网标识解析二级节点", "河北工联科技有限公司"),
            Online("A003", "县域医共体远程会诊平台", "河北健康云科技有限公司"),
        ],
    )
    first = Form(
        HEBEI,
        [
            Case("基于大模型的智能客服系统", "联通数字科技有限公司"),
            Case("工业互联网标识解析节点建设", "河北工联科技有限公司"),
        ],
    )
    corrected = Form(
        HEBEI,
        [
            Case("基于大模型的智能客服系统", "联通数字科技有限公司"),
            Case("工业互联网标识解析二级节点", "河北工联科技有限公司"),
            Case("县域医共体远程会诊平台", "河北健康云科技有限公司"),
        ],
    )
    drop.arrive(
        app,
        mail(
            "wang@he.chinaunicom.example",
            "河北联通推荐表",
            [word("推荐表.docx", first), pdf("推荐表（盖章）.pdf")],
            received=at(12),
        ),
    )
    before = register_of(app)
    first_rows = current_of(before, HEBEI)["cases"]
    assert [row["submission_ref"] for row in first_rows] == ["A001", None]

    drop.arrive(
        app,
        mail(
            "wang@he.chinaunicom.example",
            "河北联通推荐表（更正）",
            [word("推荐表-更正.docx", corrected), pdf("推荐表-更正（盖章）.pdf", marker=5)],
            received=at(14),
        ),
    )

    register = register_of(app)
    versions = [(row["version"], row["current"]) for row in register["recommendations"]]
    assert versions == [(1, False), (2, True)]
    old, new = register["recommendations"]
    assert len(old["cases"]) == 2 and old["cases"][1]["title"] == "工业互联网标识解析节点建设"
    assert [(case["match"], case["submission_ref"]) for case in new["cases"]] == [
        ("name", "A001"),
        ("name", "A002"),
        ("name", "A003"),
    ]
    assert new["complete"] is True
    assert {ref: row["recommendation_id"] for ref, row in by_ref(register).items()} == {
        "A001": new["id"],
        "A002": new["id"],
        "A003": new["id"],
    }
    assert applicant_receipts(register) == Counter({"A001": 1, "A002": 1, "A003": 1})
    unit_receipts = [row for row in register["outbox"] if row["kind"] == "unit_receipt"]
    assert len(unit_receipts) == 2


def test_rows_written_the_way_people_write_them_match_by_name(
    app: App, drop: MailDrop, tmp_path: Path
):
    import_export(
        app,
        tmp_path / "exports",
        [
            Online("A001", "基于大模型的智能客服系统", "联通数字科技有限公司", recommender=HEBEI),
            Online("A002", "5G+智慧工厂(一期)", "河北钢铁集团有限公司", recommender="河北联通"),
            Online(
                "A003", "面向行业的算力网络调度平台", "河北云算科技股份有限公司", recommender=HEBEI
            ),
            Online(
                "A004", "“雄安新区”数字孪生城市底座", "雄安数字城市科技有限公司", recommender=HEBEI
            ),
        ],
    )
    form = Form(
        HEBEI,
        [
            Case("《基于大模型的智能客服系统》", "联通数字科技"),
            Case("“5G+智慧工厂（一期）”", "河北 钢铁 集团有限公司"),
            Case("面向行业的算力网络调度", "河北云算科技股份有限公司"),
            Case("雄安新区数字孪生城市底座", "雄安数字城市科技"),
        ],
    )
    drop.arrive(
        app,
        mail(
            "wang@he.chinaunicom.example",
            "推荐表",
            [word("推荐表.docx", form), pdf("推荐表（盖章）.pdf")],
            received=at(12),
        ),
    )

    cases = current_of(register_of(app), HEBEI)["cases"]
    assert [(case["match"], case["submission_ref"]) for case in cases] == [
        ("name", "A001"),
        ("name", "A002"),
        ("name", "A003"),
        ("name", "A004"),
    ]


def test_two_similar_submissions_of_one_applicant_make_the_row_ambiguous_never_a_guess(
    app: App, drop: MailDrop, tmp_path: Path
):
    import_export(
        app,
        tmp_path / "exports",
        [
            Online("B001", "工业视觉质检平台", "华北智能科技有限公司"),
            Online("B002", "工业视觉质检系统", "华北智能科技有限公司"),
        ],
    )
    form = Form(HEBEI, [Case("工业视觉质检", "华北智能科技有限公司")])
    drop.arrive(
        app,
        mail(
            "wang@he.chinaunicom.example",
            "推荐表",
            [word("推荐表.docx", form), pdf("推荐表（盖章）.pdf")],
            received=at(12),
        ),
    )

    register = register_of(app)
    (case,) = current_of(register, HEBEI)["cases"]
    assert case["match"] == "ambiguous"
    assert case["submission_ref"] is None
    assert {ref for ref, _ in case["candidates"]} == {"B001", "B002"}
    assert applicant_receipts(register) == Counter()
    (item,) = [item for item in todo_items(register) if item.kind == "ambiguous_row"]
    assert "B001" in item.summary and "B002" in item.summary
    assert {candidate["ref"] for candidate in item.details["candidates"]} == {"B001", "B002"}
    assert by_ref(register)["B001"]["status"] == "awaiting_recommendation"


def test_a_row_without_an_online_submission_tells_the_unit_what_the_applicant_must_do(
    app: App, drop: MailDrop, tmp_path: Path
):
    import_export(app, tmp_path / "exports", CAMPAIGN_SUBMISSIONS)
    form = Form(HEBEI, [Case("乡村振兴数字化平台", "河北乡村科技有限公司")])
    message_id = drop.arrive(
        app,
        mail(
            "wang@he.chinaunicom.example",
            "推荐表",
            [word("推荐表.docx", form), pdf("推荐表（盖章）.pdf")],
            received=at(12),
        ),
    )

    register = register_of(app)
    (case,) = current_of(register, HEBEI)["cases"]
    assert (case["match"], case["submission_ref"]) == ("none", None)
    (item,) = [item for item in todo_items(register) if item.kind == "no_submission"]
    assert "乡村振兴数字化平台" in item.summary
    text = receipt_text(app, message_id)
    assert "乡村振兴数字化平台" in text
    assert "未找到在线申报记录，请申报单位尽快在线提交" in text


def receipt_text(app: App, message_id: str) -> str:
    """The text body of the unit receipt answering `message_id`, as it will be sent."""
    from sqlmodel import Session, col, select

    from service.models import Message, Outbox

    with Session(app.engine) as session:
        (body,) = session.exec(
            select(Outbox.text_body)
            .join(Message, col(Message.id) == col(Outbox.message_pk))
            .where(col(Message.message_id) == message_id, col(Outbox.kind) == "unit_receipt")
        ).all()
    return body


def comparable(value: Any) -> Any:
    """The register without what legitimately differs between two runs: ids, times, the
    mailbox folder's path."""
    if isinstance(value, dict):
        return {
            key: comparable(item)
            for key, item in value.items()
            if key not in {"id", "recommendation_id", "created_at", "sent_at", "uid", "account"}
        }
    if isinstance(value, list):
        return [comparable(item) for item in value]
    return value


def test_the_same_mail_gives_the_same_register_on_sqlite_and_postgresql(
    sqlite_url: str, postgres_url: str, tmp_path: Path
):
    campaign = Campaign.build()
    registers = []
    for name, url in (("sqlite", sqlite_url), ("postgresql", postgres_url)):
        drop = MailDrop(tmp_path / name / "mail")
        application = make_app(url, tmp_path / name, open_mailbox=drop.mailbox)
        campaign.run(application, drop, tmp_path / name / "exports")
        registers.append(register_of(application))
        application.engine.dispose()

    sqlite_register, postgres_register = registers
    assert len(sqlite_register["recommendations"]) == 3
    assert comparable(sqlite_register) == comparable(postgres_register)
