"""Deciding queue items in the workspace, over real HTTP and in Chromium: the API's answers
(200, 409, 422, 403), the 待处理 forms, 操作记录 and undo, and the register afterwards.

The campaign here is this module's own (decisions change it); tests run in order on it.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlmodel import Session, col, select

from service.manual import record_manual_decision
from service.models import Decision, ManualDecision, Outbox
from tests.support.apps import MovableClock, register_of
from tests.support.deciding import (
    notice_of,
    open_items,
    post,
    signed_in,
    signed_in_tab,
    without_decisions,
)
from tests.support.language import assert_reads_chinese
from tests.support.services import free_port
from tests.support.workspace import VIEWER, Workspace, build_campaign, csrf_of

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def desk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    """A workspace of its own on the sample campaign (the shared one must stay undecided)."""
    from service.web.server import WorkspaceServer

    workdir = tmp_path_factory.mktemp("decisions")
    clock = MovableClock(datetime(2025, 7, 22, 9, 0, tzinfo=UTC))
    app = build_campaign(workdir, clock, free_port())
    with WorkspaceServer(app) as server:
        yield Workspace(url=server.url.rstrip("/"), app=app, clock=clock)
    app.engine.dispose()


def test_every_item_offers_its_actions_in_chinese(desk: Workspace):
    with signed_in(desk) as client:
        items = open_items(client)
    kinds = {item["kind"] for item in items}
    assert {"ambiguous_row", "unplaced_pdf", "late", "needs_attention", "failed_mail"} <= kinds
    expected = {
        "ambiguous_row": {"choose", "none"},
        "unplaced_pdf": {"place", "not_a_form"},
        "late": {"accept", "reject"},
        "needs_attention": {"reprocess", "handled"},
        "needs_reply": {"replied"},
        "seal_unconfirmed": {"seal_present", "seal_absent"},
        "failed_mail": {"retry", "drop"},
        "missing_word": {"remind"},
        "missing_pdf": {"remind"},
        "no_submission": {"remind"},
    }
    for item in items:
        assert {action["name"] for action in item["actions"]} == expected.get(item["kind"], set())
        for action in item["actions"]:
            assert_reads_chinese(action["label"], where=f"{item['kind']}/{action['name']}")
    ambiguous = open_items_of(items, "ambiguous_row")[0]
    choose = next(action for action in ambiguous["actions"] if action["name"] == "choose")
    refs = [choice["value"] for choice in choose["params"][0]["choices"]]
    assert refs == [candidate["ref"] for candidate in ambiguous["candidates"]]


def open_items_of(items: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [item for item in items if item["kind"] == kind]


def test_undo_of_choose_and_of_place_leaves_the_export_as_before(desk: Workspace):
    with signed_in(desk) as client:
        before = without_decisions(client.get("/api/register").json())
        row = open_items(client, "ambiguous_row")[0]
        ref = row["candidates"][0]["ref"]
        answer = post(client, row["id"], action="choose", submission_ref=ref)
        assert answer.status_code == 200, answer.text
        assert answer.json()["open"] is False
        register = client.get("/api/register").json()
        case = next(
            case
            for unit in register["recommendations"]
            if unit["id"] == row["recommendation_id"]
            for case in unit["cases"]
            if case["row"] == row["row"]
        )
        assert (case["match"], case["submission_ref"]) == ("manual", ref)

        pdf = open_items(client, "unplaced_pdf")[0]
        target = next(
            unit["id"]
            for unit in register["recommendations"]
            if unit["current"] and not unit["pdf"]
        )
        answer = post(client, pdf["id"], action="place", recommendation_id=target)
        assert answer.status_code == 200, answer.text
        placed = client.get("/api/register").json()
        unit = next(unit for unit in placed["recommendations"] if unit["id"] == target)
        assert unit["pdf"]["sha256"] == pdf["sha256"]
        assert pdf["sha256"] not in {item["sha256"] for item in placed["unplaced_pdfs"]}

        decided = placed["decisions"]
        assert [(entry["kind"], entry["action"]) for entry in decided] == [
            ("ambiguous_row", "choose"),
            ("unplaced_pdf", "place"),
        ]
        for entry in decided:
            assert {"at", "by", "kind", "action", "target", "params"} <= entry.keys()
            assert entry["by"] == "王老师"
        assert decided[0]["params"] == {"submission_ref": ref}
        assert decided[1]["params"] == {"recommendation_id": target}

        for entry in reversed(decided):  # newest first, as 操作记录 lists them
            audit = client.get("/audit")
            assert f'id="decision-{entry["id"]}"' in audit.text
            undone = client.post(
                f"/audit/{entry['id']}/undo", data={"csrf_token": csrf_of(audit.text)}
            )
            assert undone.status_code == 303
            page = client.get(undone.headers["location"]).text
            text = notice_of(page)
            assert "已撤销" in text and "已经发出的邮件不会因撤销而收回" in text
            assert_reads_chinese(text, where="操作记录/撤销")
        after = client.get("/api/register").json()
    assert without_decisions(after) == before
    assert all(entry["undone_at"] for entry in after["decisions"])
    with Session(desk.app.engine) as session:
        assert session.exec(select(ManualDecision)).all() == []


def test_bad_actions_and_parameters_get_422_in_chinese(desk: Workspace):
    with signed_in(desk) as client:
        row = open_items(client, "ambiguous_row")[0]
        late = open_items(client, "needs_attention")[0]
        answers = [
            post(client, row["id"], action="drop"),
            post(client, row["id"], action="choose"),
            post(client, row["id"], action="choose", submission_ref="NOPE-0001"),
            post(client, late["id"], action="handled", note="   "),
            client.post(f"/api/todo/{row['id']}", json=["choose"]),
        ]
        for answer in answers:
            assert answer.status_code == 422, answer.text
            assert_reads_chinese(answer.json()["message"], where="422")
        assert "说明" in answers[3].json()["message"]
        unknown = post(client, "late:0000000000000000", action="accept")
        assert unknown.status_code == 409
        assert_reads_chinese(unknown.json()["message"], where="409")
    with Session(desk.app.engine) as session:
        assert session.exec(select(Decision).where(col(Decision.undone_at).is_(None))).all() == []


def test_a_viewer_decides_nothing(desk: Workspace):
    with signed_in(desk, VIEWER) as client:
        row = open_items(client, "ambiguous_row")[0]
        answer = post(client, row["id"], action="none")
        assert answer.status_code == 403
        assert_reads_chinese(answer.json()["message"], where="403")
        page = client.get("/todo").text
        assert "只读账号只能查看，不能做决定" in page
        assert 'name="action"' not in page
        form = client.post(
            f"/todo/{row['id']}", data={"csrf_token": csrf_of(page), "action": "none"}
        )
        assert form.status_code == 403
    with signed_in(desk) as client:
        assert open_items(client, "ambiguous_row")[0]["id"] == row["id"]


def test_two_staff_deciding_one_item_at_once_one_wins_the_other_gets_409(desk: Workspace):
    with signed_in(desk) as first, signed_in(desk) as second:
        row = open_items(first, "ambiguous_row")[0]
        refs = [candidate["ref"] for candidate in row["candidates"]]
        start = threading.Barrier(2)
        answers: dict[str, httpx.Response] = {}

        def decide(name: str, client: httpx.Client, ref: str) -> None:
            start.wait()
            answers[name] = post(client, row["id"], action="choose", submission_ref=ref)

        threads = [
            threading.Thread(target=decide, args=("first", first, refs[0])),
            threading.Thread(target=decide, args=("second", second, refs[-1])),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        codes = sorted(answer.status_code for answer in answers.values())
        assert codes == [200, 409], {name: a.text for name, a in answers.items()}
        lost = next(answer for answer in answers.values() if answer.status_code == 409)
        assert "已经有人处理过了" in lost.json()["message"]
        assert_reads_chinese(lost.json()["message"], where="409")
        with Session(desk.app.engine) as session:
            assert len(session.exec(select(ManualDecision)).all()) == 1
            standing = session.exec(select(Decision).where(col(Decision.undone_at).is_(None))).all()
        assert len(standing) == 1
        audit = first.get("/audit").text
        undone = first.post(f"/audit/{standing[0].id}/undo", data={"csrf_token": csrf_of(audit)})
        assert undone.status_code == 303
        assert open_items(first, "ambiguous_row")[0]["id"] == row["id"]


def test_the_todo_page_decides_with_a_form_and_says_so(desk: Workspace):
    with signed_in(desk) as client:
        late = open_items(client, "late")[0]
        page = client.get("/todo").text
        assert f'action="/todo/{late["id"].replace(":", "%3A")}"' in page
        answer = client.post(
            f"/todo/{late['id']}", data={"csrf_token": csrf_of(page), "action": "accept"}
        )
        assert answer.status_code == 303
        done = client.get(answer.headers["location"]).text
        text = notice_of(done)
        assert "已记录：受理" in text
        assert late["id"] not in [item["id"] for item in open_items(client)]
        audit = client.get("/audit").text
        assert "受理" in audit and "王老师" in audit
        forged = client.post(f"/todo/{late['id']}", data={"action": "reject"})
        assert forged.status_code == 403
        again = client.post(
            f"/todo/{late['id']}", data={"csrf_token": csrf_of(page), "action": "reject"}
        )
        assert again.status_code == 409
        assert "已经有人处理过了" in notice_of(again.text)
    register = register_of(desk.app)
    assert [(entry["action"], entry["target"]) for entry in register["decisions"][-1:]] == [
        ("accept", late["id"])
    ]


def test_in_the_browser_one_click_resolves_an_ambiguous_row_and_a_second_tab_is_told(
    browser: Any, desk: Workspace
):
    register = register_of(desk.app)
    with signed_in(desk) as client:
        row = open_items(client, "ambiguous_row")[0]
    ref = row["candidates"][-1]["ref"]
    first, tab = signed_in_tab(browser, desk)
    second, other = signed_in_tab(browser, desk)
    try:
        for page in (tab, other):
            page.goto("/todo")
        item = f'li[id="todo-{row["id"]}"]'
        tab.select_option(f"{item} select[name=submission_ref]", ref)
        tab.click(f"{item} form:has(input[value=choose]) button")
        tab.wait_for_url(re.compile(r"/todo\?done=\d+"))
        notice = tab.locator("p.notice").inner_text()
        assert "已记录：确认对应这一项在线申报" in notice
        assert_reads_chinese(notice, where="待处理")
        assert tab.locator(item).count() == 0

        with other.expect_navigation():
            other.click(f"{item} form:has(input[value=choose]) button")
        alert = other.locator("p.error").inner_text()
        assert "已经有人处理过了" in alert
        assert_reads_chinese(alert, where="待处理/409")
    finally:
        first.close()
        second.close()
    after = register_of(desk.app)
    unit = next(u for u in after["recommendations"] if u["id"] == row["recommendation_id"])
    case = next(case for case in unit["cases"] if case["row"] == row["row"])
    assert (case["match"], case["submission_ref"]) == ("manual", ref)
    chosen = [entry for entry in after["decisions"] if entry["target"] == row["id"]]
    assert len(chosen) == len([e for e in register["decisions"] if e["target"] == row["id"]]) + 1


def test_each_kind_is_decided_through_the_api_and_the_register_says_so(desk: Workspace):
    with signed_in(desk) as client:
        for kind, action, params in [
            ("unplaced_pdf", "not_a_form", {}),
            ("needs_attention", "handled", {"note": "已电话联系推荐单位，改用附件重发"}),
            ("needs_reply", "replied", {"note": "已用邮件回复"}),
            ("seal_unconfirmed", "seal_present", {}),
            ("failed_mail", "retry", {}),
        ]:
            items = open_items(client, kind)
            if not items:
                assert kind == "needs_reply", f"the campaign has no {kind} item"
                continue
            item = items[0]
            answer = post(client, item["id"], action=action, **params)
            assert answer.status_code == 200, answer.text
            state = answer.json()
            assert state["open"] is False, (kind, state)
            assert state["decisions"][-1]["action"] == action
            assert state["decisions"][-1]["params"] == params
            if kind == "failed_mail":
                with Session(desk.app.engine) as session:
                    mail = session.get(Outbox, item["outbox_id"])
                    assert mail is not None and mail.status == "pending"
    register = register_of(desk.app)
    standing = [entry for entry in register["decisions"] if not entry["undone_at"]]
    assert {entry["kind"] for entry in standing} >= {
        "unplaced_pdf",
        "needs_attention",
        "seal_unconfirmed",
        "failed_mail",
        "ambiguous_row",
        "late",
    }


def test_undoing_a_closing_decision_puts_the_item_back_on_the_queue(desk: Workspace):
    with signed_in(desk) as client:
        decided = [
            entry
            for entry in client.get("/api/register").json()["decisions"]
            if entry["action"] == "seal_present" and not entry["undone_at"]
        ]
        assert decided, "the seal was confirmed earlier in this module"
        target = decided[0]["target"]
        assert target not in [item["id"] for item in open_items(client)]
        audit = client.get("/audit").text
        assert "已盖公章" in audit
        answer = client.post(f"/audit/{decided[0]['id']}/undo", data={"csrf_token": csrf_of(audit)})
        assert answer.status_code == 303
        assert target in [item["id"] for item in open_items(client)]
        twice = client.post(f"/audit/{decided[0]['id']}/undo", data={"csrf_token": csrf_of(audit)})
        assert twice.status_code == 409
        assert "已经撤销过了" in notice_of(twice.text)


def reminders(desk: Workspace) -> list[Outbox]:
    with Session(desk.app.engine) as session:
        return list(
            session.exec(
                select(Outbox).where(col(Outbox.kind) == "reminder").order_by(col(Outbox.id))
            ).all()
        )


def test_a_reminder_goes_once_and_a_second_waits_for_min_days(desk: Workspace):
    from service.models import Recommendation

    with signed_in(desk) as client:
        items = [
            item
            for item in open_items(client)
            if item["kind"] in ("missing_word", "missing_pdf", "no_submission")
        ]
        assert items, "the campaign has an incomplete recommendation"
        item = items[0]
        with Session(desk.app.engine) as session:
            recommendation = session.get(Recommendation, item["recommendation_id"])
            assert recommendation is not None
            expected_to = (recommendation.contact_email or recommendation.sender).lower()
        first = post(client, item["id"], action="remind")
        assert first.status_code == 200, first.text
        assert first.json()["open"] is True
        assert first.json()["decisions"][-1]["action"] == "remind"
        sent = reminders(desk)
        assert len(sent) == 1
        mail = sent[0]
        assert mail.recipient == expected_to
        assert mail.status == "pending"
        assert "尚未齐全" in mail.subject and recommendation.unit in mail.subject
        assert_reads_chinese(mail.text_body, where="reminder mail")
        if item["kind"] == "missing_pdf":
            assert "加盖公章的PDF版推荐表" in mail.text_body
        elif item["kind"] == "missing_word":
            assert "Word版推荐表" in mail.text_body
        else:
            assert f"第{item['row']}行" in mail.text_body
        assert mail.in_reply_to, "the reminder is threaded on the unit's latest message"
        assert "上次催办提醒" in next(
            entry["summary"] for entry in open_items(client) if entry["id"] == item["id"]
        )

        again = post(client, item["id"], action="remind")
        assert again.status_code == 409
        day = desk.clock.now.astimezone(desk.app.settings.campaign.zone).strftime("%Y年%m月%d日")
        assert day in again.text
        assert len(reminders(desk)) == 1

    desk.clock.now += timedelta(days=desk.app.settings.reminders.min_days, minutes=1)
    with signed_in(desk) as client:
        later = post(client, item["id"], action="remind")
        assert later.status_code == 200, later.text
        assert len(reminders(desk)) == 2
        decision = later.json()["decisions"][-1]
        audit = client.get("/audit").text
        undone = client.post(f"/audit/{decision['id']}/undo", data={"csrf_token": csrf_of(audit)})
        assert undone.status_code == 303
        assert len(reminders(desk)) == 1, "undo withdrew the reminder not yet sent"


def test_intake_pair_records_who_decided(desk: Workspace):
    register = register_of(desk.app)
    unit = next(
        unit
        for unit in register["recommendations"]
        if unit["current"] and any(case["match"] == "none" for case in unit["cases"])
    )
    number = next(case["row"] for case in unit["cases"] if case["match"] == "none")
    said = record_manual_decision(desk.app, unit["id"], kind="row", row=number, by="李老师")
    assert "marked as having no submission" in said
    entry = register_of(desk.app)["decisions"][-1]
    assert (entry["by"], entry["kind"], entry["action"]) == ("李老师", "ambiguous_row", "none")
    assert entry["target"] == f"ambiguous_row:{unit['unit_key']}:v{unit['version']}:{number}"
