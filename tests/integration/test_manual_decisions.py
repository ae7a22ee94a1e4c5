"""Staff's `intake pair set / clear / pdf`: they win over automatic decisions and survive
`intake reprocess`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from service.bootstrap import App
from service.manual import DecisionError, record_manual_decision
from service.processing import rebuild_all
from tests.support.apps import make_app, register_of
from tests.support.intake_process import local_config, run_intake
from tests.support.mailmaker import (
    HEBEI,
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

EXPORT = [
    Online("B001", "工业视觉质检平台", "华北智能科技有限公司"),
    Online("B002", "工业视觉质检系统", "华北智能科技有限公司"),
    Online("A001", "基于大模型的智能客服系统", "联通数字科技有限公司", recommender=HEBEI),
]
FORM = Form(
    HEBEI,
    [
        Case("工业视觉质检", "华北智能科技有限公司"),
        Case("基于大模型的智能客服系统", "联通数字科技有限公司"),
    ],
)


@pytest.fixture
def app(app: App, tmp_path: Path) -> App:
    """The pipeline's App, with EXPORT imported."""
    import_export(app, tmp_path / "exports", EXPORT)
    return app


def hebei(app: App) -> dict[str, Any]:
    (row,) = [
        row
        for row in register_of(app)["recommendations"]
        if row["current"] and row["unit"] == HEBEI
    ]
    return row


def rows(app: App) -> list[tuple[str, str | None]]:
    return [(case["match"], case["submission_ref"]) for case in hebei(app)["cases"]]


def send_form(app: App, drop: MailDrop, *, with_pdf: bool = True) -> None:
    files = [word("推荐表.docx", FORM)]
    if with_pdf:
        files.append(pdf("推荐表（盖章）.pdf"))
    drop.arrive(app, mail("wang@he.chinaunicom.example", "推荐表", files, received=at(12)))


def test_staff_tie_an_ambiguous_row_and_the_tie_survives_reprocessing(app: App, drop: MailDrop):
    send_form(app, drop)
    assert rows(app) == [("ambiguous", None), ("name", "A001")]

    said = record_manual_decision(app, hebei(app)["id"], kind="row", row=1, submission="B002")

    assert "B002" in said
    assert rows(app) == [("manual", "B002"), ("name", "A001")]
    statuses = {row["ref"]: row["status"] for row in register_of(app)["submissions"]}
    assert statuses["B002"] == "complete" and statuses["B001"] == "awaiting_recommendation"
    outbox = register_of(app)["outbox"]
    assert [row["submission_ref"] for row in outbox if row["kind"] == "applicant_receipt"] == [
        "A001",
        "B002",
    ]

    rebuild_all(app)

    assert rows(app) == [("manual", "B002"), ("name", "A001")]
    assert register_of(app)["outbox"] == outbox


def test_staff_clear_a_wrong_automatic_match_and_the_clear_survives_reprocessing(
    app: App, drop: MailDrop
):
    send_form(app, drop)

    record_manual_decision(app, hebei(app)["id"], kind="row", row=2, submission=None)

    assert rows(app)[1] == ("none", None)
    rebuild_all(app)
    assert rows(app)[1] == ("none", None)


def test_staff_place_a_stray_pdf_and_the_placement_survives_reprocessing(app: App, drop: MailDrop):
    send_form(app, drop, with_pdf=False)
    drop.arrive(app, mail("chen@qq.example", "扫描件", [pdf("scan.pdf")], received=at(13)))
    register = register_of(app)
    (stray,) = register["unplaced_pdfs"]
    assert hebei(app)["pdf"] is None

    record_manual_decision(app, hebei(app)["id"], kind="pdf", attachment=stray["sha256"][:12])

    placed = hebei(app)
    assert placed["pdf"]["sha256"] == stray["sha256"]
    assert placed["pdf_pairing"]["method"] == "manual"
    assert placed["complete"] is True
    assert register_of(app)["unplaced_pdfs"] == []

    rebuild_all(app)

    again = hebei(app)
    assert again["pdf"]["sha256"] == stray["sha256"]
    assert again["pdf_pairing"]["method"] == "manual"
    assert again["complete"] is True


def test_a_decision_naming_something_unknown_is_refused_with_what_to_do(app: App, drop: MailDrop):
    send_form(app, drop)
    recommendation = hebei(app)["id"]

    with pytest.raises(DecisionError, match="import the latest export"):
        record_manual_decision(app, recommendation, kind="row", row=1, submission="Z999")
    with pytest.raises(DecisionError, match="has no row 9"):
        record_manual_decision(app, recommendation, kind="row", row=9, submission="B001")
    with pytest.raises(DecisionError, match="form PDFs"):
        record_manual_decision(app, recommendation, kind="pdf", attachment="ffffffff")


def test_intake_pair_set_on_the_command_line_ties_the_row(sqlite_url: str, tmp_path: Path):
    drop = MailDrop(tmp_path / "mail")
    application = make_app(sqlite_url, tmp_path, open_mailbox=drop.mailbox)
    import_export(application, tmp_path / "exports", EXPORT)
    send_form(application, drop)
    recommendation = hebei(application)["id"]
    config = local_config(tmp_path, sqlite_url)

    done = run_intake(
        config,
        "pair",
        "set",
        "--recommendation",
        str(recommendation),
        "--row",
        "1",
        "--submission",
        "B001",
    )

    assert done.returncode == 0, done.stderr
    assert "B001" in done.stdout
    assert rows(application)[0] == ("manual", "B001")
    application.engine.dispose()


def test_a_decision_on_a_superseded_version_points_staff_to_the_current_one(
    app: App, drop: MailDrop
):
    send_form(app, drop)
    old = hebei(app)["id"]
    corrected = Form(HEBEI, [*FORM.cases, Case("县域医共体远程会诊平台", "河北健康云科技有限公司")])
    drop.arrive(
        app,
        mail(
            "wang@he.chinaunicom.example",
            "推荐表（更正）",
            [word("推荐表.docx", corrected)],
            received=at(13),
        ),
    )
    current = hebei(app)

    with pytest.raises(DecisionError, match=f"version 2 \\(#{current['id']}\\)"):
        record_manual_decision(app, old, kind="row", row=1, submission="B001")


def ambiguous_item(app: App) -> dict[str, Any]:
    from service.todo import todo_items, todo_json

    (item,) = [
        todo_json(item) for item in todo_items(register_of(app)) if item.kind == "ambiguous_row"
    ]
    return item


def ambiguous_item_or_none(app: App) -> dict[str, Any] | None:
    from service.todo import todo_items

    found = [item for item in todo_items(register_of(app)) if item.kind == "ambiguous_row"]
    return {"id": found[0].id} if found else None


def test_a_choice_made_in_the_workspace_survives_reprocessing_and_its_undo_withdraws_its_mail(
    app: App, drop: MailDrop
):
    from service.decisions import decide, undo

    send_form(app, drop)
    before = {key: value for key, value in register_of(app).items() if key != "decisions"}
    item = ambiguous_item(app)

    state = decide(app, item["id"], "choose", {"submission_ref": "B002"}, by="王老师")

    assert state["open"] is False
    assert rows(app) == [("manual", "B002"), ("name", "A001")]
    receipts = [row for row in register_of(app)["outbox"] if row["kind"] == "applicant_receipt"]
    assert [row["submission_ref"] for row in receipts] == ["A001", "B002"]
    (entry,) = register_of(app)["decisions"]
    assert (entry["by"], entry["action"], entry["target"]) == ("王老师", "choose", item["id"])

    said = undo(app, entry["id"], by="王老师")

    assert "已经发出的邮件不会因撤销而收回" in said and "1封邮件已取消" in said
    after = register_of(app)
    assert {key: value for key, value in after.items() if key != "decisions"} == before
    assert after["decisions"][0]["undone_by"] == "王老师"

    decide(app, item["id"], "choose", {"submission_ref": "B002"}, by="李老师")
    rebuild_all(app)
    assert rows(app) == [("manual", "B002"), ("name", "A001")]
    assert ambiguous_item_or_none(app) is None


def test_two_staff_choosing_at_once_one_wins_and_nothing_is_applied_twice(app: App, drop: MailDrop):
    import threading

    from service.decisions import DecisionRefusedError, decide

    send_form(app, drop)
    item = ambiguous_item(app)
    start = threading.Barrier(2)
    outcomes: list[str] = []

    def choose(ref: str) -> None:
        start.wait()
        try:
            decide(app, item["id"], "choose", {"submission_ref": ref}, by=ref)
            outcomes.append("decided")
        except DecisionRefusedError as refused:
            outcomes.append(str(refused.status))

    threads = [threading.Thread(target=choose, args=(ref,)) for ref in ("B001", "B002")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(outcomes) == ["409", "decided"]
    register = register_of(app)
    assert len(register["decisions"]) == 1
    assert rows(app)[0] == ("manual", register["decisions"][0]["by"])
    receipts = [row for row in register["outbox"] if row["kind"] == "applicant_receipt"]
    assert len(receipts) == 2


def seal_item(app: App) -> dict[str, Any] | None:
    from service.todo import todo_items, todo_json

    found = [
        todo_json(item) for item in todo_items(register_of(app)) if item.kind == "seal_unconfirmed"
    ]
    return found[0] if found else None


def receipt_seals(app: App) -> list[str | None]:
    """The seal each file of the form's message would be reported with in a unit receipt."""
    from sqlmodel import Session, select

    from service.models import Message, Recommendation
    from service.outbox import unit_receipt_context

    with Session(app.engine) as session:
        message = session.exec(select(Message).where(Message.subject == "推荐表")).one()
        current = session.exec(
            select(Recommendation).where(Recommendation.current == True)  # noqa: E712
        ).all()
        context = unit_receipt_context(app, session, message, list(current))
        return [item.seal for item in context.attachments if item.kind == "form_pdf"]


def send_unsealed_form(app: App, drop: MailDrop) -> None:
    files = [word("推荐表.docx", FORM), pdf("推荐表（盖章）.pdf", seal=False)]
    drop.arrive(app, mail("wang@he.chinaunicom.example", "推荐表", files, received=at(12)))


def test_a_seal_staff_confirm_wins_survives_reprocessing_and_its_undo_restores_the_check(
    app: App, drop: MailDrop
):
    from service.decisions import decide, undo

    send_unsealed_form(app, drop)
    item = seal_item(app)
    assert item is not None and hebei(app)["pdf"]["seal"] == "absent"
    before = {key: value for key, value in register_of(app).items() if key != "decisions"}

    state = decide(app, item["id"], "seal_present", {}, by="王老师")

    assert state["open"] is False
    pdf_entry = hebei(app)["pdf"]
    assert pdf_entry["seal"] == "present"
    assert pdf_entry["seal_confirmed"]["by"] == "王老师"
    assert receipt_seals(app) == ["present"]
    (entry,) = register_of(app)["decisions"]
    assert (entry["kind"], entry["action"], entry["target"]) == (
        "seal_unconfirmed",
        "seal_present",
        item["id"],
    )

    undo(app, entry["id"], by="王老师")

    after = register_of(app)
    assert {key: value for key, value in after.items() if key != "decisions"} == before
    assert receipt_seals(app) == ["absent"]
    assert seal_item(app) == item

    decide(app, item["id"], "seal_absent", {}, by="李老师")
    rebuild_all(app)

    again = hebei(app)["pdf"]
    assert (again["seal"], again["seal_confirmed"]["by"]) == ("absent", "李老师")
    assert seal_item(app) is None


def test_a_seal_decided_on_one_pdf_is_asked_again_when_staff_place_another(
    app: App, drop: MailDrop
):
    from service.decisions import decide

    send_unsealed_form(app, drop)
    first = seal_item(app)
    assert first is not None
    decide(app, first["id"], "seal_absent", {}, by="王老师")
    assert seal_item(app) is None
    drop.arrive(
        app,
        mail(
            "chen@qq.example",
            "补发扫描件",
            [pdf("补发.pdf", seal=False, marker=7)],
            received=at(13),
        ),
    )
    (stray,) = register_of(app)["unplaced_pdfs"]

    record_manual_decision(app, hebei(app)["id"], kind="pdf", attachment=stray["sha256"][:12])

    again = seal_item(app)
    assert hebei(app)["pdf"]["sha256"] == stray["sha256"]
    assert again is not None and again["id"] != first["id"]
    assert "补发.pdf" in again["summary"]


def test_two_staff_confirming_one_seal_at_once_one_wins(app: App, drop: MailDrop):
    import threading

    from service.decisions import DecisionRefusedError, decide

    send_unsealed_form(app, drop)
    item = seal_item(app)
    assert item is not None
    start = threading.Barrier(2)
    outcomes: dict[str, str] = {}

    def confirm(action: str) -> None:
        start.wait()
        try:
            decide(app, item["id"], action, {}, by=action)
            outcomes[action] = "decided"
        except DecisionRefusedError as refused:
            outcomes[action] = str(refused.status)

    threads = [threading.Thread(target=confirm, args=(a,)) for a in ("seal_present", "seal_absent")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(outcomes.values()) == ["409", "decided"]
    winner = next(action for action, outcome in outcomes.items() if outcome == "decided")
    (entry,) = register_of(app)["decisions"]
    assert (entry["action"], entry["by"]) == (winner, winner)
    assert hebei(app)["pdf"]["seal"] == {"seal_present": "present", "seal_absent": "absent"}[winner]
