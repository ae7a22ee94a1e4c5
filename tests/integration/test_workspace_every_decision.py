"""Every kind of queue item decided in the workspace, on one campaign that has them all
(tests/support/every_kind.py): in Chromium from 待处理 with a click or two, then every other
action over the API, each undone, with the register checked after each step.

Tests run in order on the module's campaign: the second starts where the first left off.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.support.apps import MovableClock
from tests.support.deciding import (
    notice_of,
    open_items,
    post,
    signed_in,
    signed_in_tab,
    without_decisions,
)
from tests.support.every_kind import QUESTION_SENDER, build_every_kind_campaign
from tests.support.language import assert_reads_chinese
from tests.support.services import free_port
from tests.support.workspace import Workspace, build_campaign, csrf_of

pytestmark = pytest.mark.integration

EVERY_KIND = {
    "mailbox_unreadable",
    "needs_attention",
    "needs_reply",
    "late",
    "unplaced_pdf",
    "missing_word",
    "missing_pdf",
    "seal_unconfirmed",
    "ambiguous_row",
    "no_submission",
    "failed_mail",
}
STAFF = "王老师"


@pytest.fixture(scope="module")
def desk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    """The every-kind campaign in a workspace of its own (decisions change it)."""
    from service.web.server import WorkspaceServer

    workdir = tmp_path_factory.mktemp("every-decision")
    clock = MovableClock(datetime(2025, 7, 22, 9, 0, tzinfo=UTC))
    app = build_every_kind_campaign(workdir, clock, free_port())
    with WorkspaceServer(app) as server:
        yield Workspace(url=server.url.rstrip("/"), app=app, clock=clock)
    app.engine.dispose()


def item_of(items: list[dict[str, Any]], kind: str, where: str = "") -> dict[str, Any]:
    """The first open item of `kind` whose id names `where`."""
    return next(item for item in items if item["kind"] == kind and where in item["id"])


def unit_of(register: dict[str, Any], name: str) -> dict[str, Any]:
    """The current recommendation of the unit `name`."""
    return next(
        row for row in register["recommendations"] if row["current"] and row["unit"] == name
    )


def click(
    tab: Any,
    item_id: str,
    action: str,
    *,
    note: str = "",
    choice: str = "",
    form: str = "",
) -> str:
    """On 待处理 (as it is when `form` is given, else loaded afresh), press the button of
    `action` on item `item_id`, choosing `choice` and writing `note` first; returns the notice
    or error the next page shows."""
    if not form:
        tab.goto("/todo")
    selector = form or f"form:has(input[name=action][value={action}])"
    found = tab.locator(f'li[id="todo-{item_id}"] {selector}')
    assert found.count() == 1, f"{item_id}: no single form for {action}"
    if choice:
        found.locator("select").select_option(choice)
    if note:
        found.locator("input[name=note]").fill(note)
    with tab.expect_navigation():
        found.locator("button[type=submit]").click()
    said = tab.locator("p.notice, p.error").first.inner_text()
    # what senders wrote (an address, a subject in 「」) is shown as it is
    shown = re.sub(r"[\w.]+@[\w.]+", " ", re.sub(r"「[^」]*」", " ", said))
    assert_reads_chinese(shown, where=f"待处理/{action}")
    return str(said)


def test_in_the_browser_one_item_of_each_kind_is_decided_from_todo(browser: Any, desk: Workspace):
    with signed_in(desk) as client:
        items = open_items(client)
        assert {item["kind"] for item in items} == EVERY_KIND
        start = client.get("/api/register").json()
    context, tab = signed_in_tab(browser, desk)
    try:
        # mailbox_unreadable: nothing to decide, a way to the operator's page
        mailbox = item_of(items, "mailbox_unreadable")
        entry = tab.locator(f'li[id="todo-{mailbox["id"]}"]')
        tab.goto("/todo")
        assert entry.locator("form").count() == 0
        with tab.expect_navigation():
            entry.locator("a.status-link").click()
        assert tab.url.endswith("/status")
        trouble = tab.locator("main tr", has_text=mailbox["account"]).locator(".warn")
        assert trouble.count() == 1, "运行状态 shows the mailbox that cannot be read"

        # seal_unconfirmed: the seal staff saw becomes the PDF's seal
        seal = item_of(items, "seal_unconfirmed", "甲协会")
        assert "已记录：已盖公章" in click(tab, seal["id"], "seal_present")
        tab.goto(f"/units/{seal['recommendation_id']}")
        assert f"已盖公章（{STAFF}于" in tab.locator("main").inner_text()

        # ambiguous_row: a submission found by search, not among the candidates
        row = item_of(items, "ambiguous_row")
        candidates = {candidate["ref"] for candidate in row["candidates"]}
        elsewhere = next(
            sub
            for sub in start["submissions"]
            if sub["recommendation_id"] is None and sub["ref"] not in candidates
        )
        tab.goto("/todo")
        search = tab.locator(f'li[id="todo-{row["id"]}"] form.search')
        search.locator("input[name=q]").fill(elsewhere["title"][-6:])
        with tab.expect_navigation():
            search.locator("button").click()
        said = click(tab, row["id"], "choose", choice=elsewhere["ref"], form="form.found")
        assert "已记录：确认对应这一项在线申报" in said

        # missing_word / missing_pdf: a reminder each (two units); a third to the first unit
        # within reminders.min_days is refused with the day of the last one
        assert "已记录：发送催办提醒" in click(tab, item_of(items, "missing_word")["id"], "remind")
        assert "已记录：发送催办提醒" in click(tab, item_of(items, "missing_pdf")["id"], "remind")
        refused = click(tab, item_of(items, "no_submission", "己协会")["id"], "remind")
        day = desk.clock.now.astimezone(desk.app.settings.campaign.zone).strftime("%Y年%m月%d日")
        assert f"已于{day}向该单位发送过催办提醒" in refused

        # unplaced_pdf: placed on the unit that has no PDF
        pdf = item_of(items, "unplaced_pdf")
        target = unit_of(start, "丙协会")
        said = click(tab, pdf["id"], "place", choice=str(target["id"]))
        assert "已记录：放入所选的推荐表" in said

        # late: accepted, shown with the message
        late = item_of(items, "late")
        assert "已记录：受理" in click(tab, late["id"], "accept")
        tab.goto(f"/messages/{late['message_id']}")
        assert f"{STAFF}已决定：受理" in tab.locator("main").inner_text()

        # needs_reply: a reply link with the subject on one line, then replied with a note
        reply = item_of(items, "needs_reply")
        tab.goto("/todo")
        link = tab.locator(f'li[id="todo-{reply["id"]}"] a.reply').get_attribute("href")
        assert link is not None
        parts = urlsplit(link)
        assert (parts.scheme, parts.path) == ("mailto", QUESTION_SENDER)
        assert not re.search(r"[\r\n]|%0[DdAa]", link), link
        assert parse_qs(parts.query) == {
            "subject": ["Re: 关于申报材料的问题 Bcc: spy@evil.example"]
        }
        said = click(tab, reply["id"], "replied", note="已用本人邮箱答复：编号可暂空")
        assert "已记录：已回复" in said

        # failed_mail: sent again
        failed = item_of(items, "failed_mail")
        assert "已记录：重新发送" in click(tab, failed["id"], "retry")

        # needs_attention: re-read (it still needs a person, so it stays), then handled
        attention = item_of(items, "needs_attention")
        assert "已记录：重新处理" in click(tab, attention["id"], "reprocess")
        assert attention["id"] in [entry["id"] for entry in open_items_now(desk)]
        note = "已下载网盘中的推荐材料并存档"
        assert "已记录：已人工处理" in click(tab, attention["id"], "handled", note=note)
        tab.goto(f"/messages/{attention['message_id']}")
        assert note in tab.locator("#decided").inner_text()
    finally:
        context.close()

    # the unit reminded first may be reminded again once reminders.min_days have passed
    desk.clock.now += timedelta(days=desk.app.settings.reminders.min_days, minutes=1)
    context, tab = signed_in_tab(browser, desk)
    try:
        again = click(tab, item_of(items, "no_submission", "己协会")["id"], "remind")
        assert "已记录：发送催办提醒" in again
    finally:
        context.close()

    with signed_in(desk) as client:
        register = client.get("/api/register").json()
        still_open = {item["id"] for item in open_items(client)}
    decided = [
        (entry["by"], entry["kind"], entry["action"], entry["target"], entry["params"])
        for entry in register["decisions"]
    ]
    assert decided == [
        (STAFF, "seal_unconfirmed", "seal_present", seal["id"], {}),
        (STAFF, "ambiguous_row", "choose", row["id"], {"submission_ref": elsewhere["ref"]}),
        (STAFF, "missing_word", "remind", item_of(items, "missing_word")["id"], {}),
        (STAFF, "missing_pdf", "remind", item_of(items, "missing_pdf")["id"], {}),
        (STAFF, "unplaced_pdf", "place", pdf["id"], {"recommendation_id": target["id"]}),
        (STAFF, "late", "accept", late["id"], {}),
        (STAFF, "needs_reply", "replied", reply["id"], {"note": "已用本人邮箱答复：编号可暂空"}),
        (STAFF, "failed_mail", "retry", failed["id"], {}),
        (STAFF, "needs_attention", "reprocess", attention["id"], {}),
        (STAFF, "needs_attention", "handled", attention["id"], {"note": note}),
        (STAFF, "no_submission", "remind", item_of(items, "no_submission", "己协会")["id"], {}),
    ]
    # closed items are gone; a reminder leaves its item open (the unit still lacks it), and so
    # does a mailbox that still cannot be read
    assert still_open.isdisjoint(
        {seal["id"], row["id"], pdf["id"], late["id"], reply["id"], failed["id"], attention["id"]}
    )
    assert {mailbox["id"], item_of(items, "missing_word")["id"]} <= still_open
    # each decision's effect, after `reprocess` re-read the whole archive in between
    jia = unit_of(register, "甲协会")
    assert jia["pdf"]["seal"] == "present"
    assert jia["pdf"]["seal_confirmed"]["by"] == STAFF
    bing = unit_of(register, "丙协会")
    assert bing["pdf"]["sha256"] == pdf["sha256"]
    assert bing["pdf_pairing"]["method"] == "manual"
    case = next(case for case in bing["cases"] if case["row"] == row["row"])
    assert (case["match"], case["submission_ref"]) == ("manual", elsewhere["ref"])
    message = next(entry for entry in register["messages"] if entry["id"] == late["message_id"])
    assert message["late_decision"]["action"] == "accept"
    assert message["late_decision"]["by"] == STAFF
    mail = next(entry for entry in register["outbox"] if entry["id"] == failed["outbox_id"])
    assert (mail["status"], mail["attempts"]) == ("pending", 0)
    reminders = [entry for entry in register["outbox"] if entry["kind"] == "reminder"]
    assert len(reminders) == 3


def open_items_now(desk: Workspace) -> list[dict[str, Any]]:
    with signed_in(desk) as client:
        return open_items(client)


def undo(client: httpx.Client, decision_id: int) -> None:
    audit = client.get("/audit").text
    answer = client.post(f"/audit/{decision_id}/undo", data={"csrf_token": csrf_of(audit)})
    assert answer.status_code == 303, notice_of(answer.text)


def standing(client: httpx.Client, item_id: str) -> list[dict[str, Any]]:
    return [
        entry
        for entry in client.get("/api/register").json()["decisions"]
        if entry["target"] == item_id and not entry["undone_at"] and entry["action"] != "reprocess"
    ]


OTHER_ACTIONS = [
    ("ambiguous_row", "", "none", {}),
    ("ambiguous_row", "", "choose", {"submission_ref": "S004"}),
    ("unplaced_pdf", "", "not_a_form", {}),
    ("unplaced_pdf", "", "place", {"recommendation_id": "丙协会"}),
    ("late", "", "reject", {}),
    ("late", "", "accept", {}),
    ("seal_unconfirmed", "甲协会", "seal_absent", {}),
    ("seal_unconfirmed", "己协会", "seal_present", {}),
    ("needs_reply", "", "replied", {"note": "已电话答复"}),
    ("needs_attention", "", "handled", {"note": "已人工登记"}),
    ("failed_mail", "", "drop", {}),
    ("failed_mail", "", "retry", {}),
    ("missing_pdf", "", "remind", {}),
]
"""Each action of each kind, over the API: decided, its effect checked, undone."""


def test_every_action_over_the_api_and_its_undo_restores_the_register(desk: Workspace):
    desk.clock.now += timedelta(days=desk.app.settings.reminders.min_days, minutes=1)
    with signed_in(desk) as client:
        # take back what the browser decided, so that every item is open again
        for entry in reversed(client.get("/api/register").json()["decisions"]):
            if not entry["undone_at"] and entry["action"] != "reprocess":
                undo(client, entry["id"])
        items = open_items(client)
        assert {item["kind"] for item in items} == EVERY_KIND
        seal_before = unit_of(client.get("/api/register").json(), "甲协会")["pdf"]
        assert (seal_before["seal"], seal_before["seal_confirmed"]) == ("absent", None)

        for kind, where, action, given in OTHER_ACTIONS:
            item = item_of(open_items(client), kind, where)
            params = dict(given)
            if action == "place":
                target = unit_of(client.get("/api/register").json(), given["recommendation_id"])
                params = {"recommendation_id": target["id"]}
            before = client.get("/api/register").json()
            answer = post(client, item["id"], action=action, **params)
            assert answer.status_code == 200, (kind, action, answer.text)
            state = answer.json()
            assert state["decisions"][-1]["action"] == action
            assert state["decisions"][-1]["params"] == params
            assert state["decisions"][-1]["by"] == STAFF
            assert state["open"] is (action == "remind"), (kind, action)
            after = client.get("/api/register").json()
            assert without_decisions(after) != before or action in (
                "not_a_form",
                "reject",
                "accept",
                "replied",
                "handled",
                "drop",
            ), f"{kind}/{action} changed nothing"
            if action in ("not_a_form", "reject", "accept", "replied", "handled", "drop"):
                assert after["outbox"] == before["outbox"], f"{kind}/{action} queued mail"
            if kind == "seal_unconfirmed":
                unit = unit_of(after, where)
                assert unit["pdf"]["seal"] == {"seal_absent": "absent"}.get(action, "present")
                assert unit["pdf"]["seal_confirmed"]["by"] == STAFF
            if kind == "late":
                message = next(m for m in after["messages"] if m["id"] == item["message_id"])
                assert message["late_decision"]["action"] == action
            (decision,) = standing(client, item["id"])
            undo(client, decision["id"])
            restored = client.get("/api/register").json()
            # everything but decisions[] (which now lists the decision and its undo) is back
            assert without_decisions(restored) == without_decisions(before), (kind, action)
            assert item["id"] in [entry["id"] for entry in open_items(client)]


def test_a_seal_decision_survives_reprocessing_and_reaches_the_workbook(desk: Workspace):
    from service.workbook import register_workbook

    with signed_in(desk) as client:
        seal = item_of(open_items(client), "seal_unconfirmed", "己协会")
        assert post(client, seal["id"], action="seal_present").status_code == 200
        attention = item_of(open_items(client), "needs_attention")
        assert post(client, attention["id"], action="reprocess").status_code == 200
        register = client.get("/api/register").json()
        ji = unit_of(register, "己协会")
        assert (ji["pdf"]["seal"], ji["pdf"]["seal_confirmed"]["by"]) == ("present", STAFF)
        assert seal["id"] not in [item["id"] for item in open_items(client)]
    assert f"已盖公章（{STAFF}确认）" in sheet_text(register_workbook(register))


def sheet_text(data: bytes) -> str:
    import io

    from openpyxl import load_workbook

    book = load_workbook(io.BytesIO(data), read_only=True)
    return " ".join(
        str(value)
        for sheet in book.worksheets
        for line in sheet.iter_rows(values_only=True)
        for value in line
        if value is not None
    )


def test_on_postgresql_two_staff_deciding_the_same_items_at_once_one_wins_each(
    tmp_path: Path, postgres_url: str
):
    """Over HTTP, on PostgreSQL: two signed-in staff race on a row and on a late mail; each
    item gets one decision, the loser a 409 in Chinese, and the row is tied once."""
    from service.web.server import WorkspaceServer

    clock = MovableClock(datetime(2025, 7, 22, 9, 0, tzinfo=UTC))
    app = build_campaign(tmp_path, clock, free_port(), db_url=postgres_url)
    with WorkspaceServer(app) as server:
        desk = Workspace(url=server.url.rstrip("/"), app=app, clock=clock)
        with signed_in(desk) as first, signed_in(desk) as second:
            row = item_of(open_items(first), "ambiguous_row")
            late = item_of(open_items(first), "late")
            refs = [candidate["ref"] for candidate in row["candidates"]]
            races = [
                (row["id"], [{"action": "choose", "submission_ref": ref} for ref in refs[:2]]),
                (late["id"], [{"action": "accept"}, {"action": "reject"}]),
            ]
            for item_id, bodies in races:
                answers = race(item_id, [(first, bodies[0]), (second, bodies[1])])
                assert sorted(answers) == [200, 409], item_id
            register = first.get("/api/register").json()
    app.engine.dispose()
    for item_id, _ in races:
        assert len([entry for entry in register["decisions"] if entry["target"] == item_id]) == 1
    case = next(
        case
        for unit in register["recommendations"]
        if unit["id"] == row["recommendation_id"]
        for case in unit["cases"]
        if case["row"] == row["row"]
    )
    (chosen,) = [entry for entry in register["decisions"] if entry["target"] == row["id"]]
    assert (case["match"], case["submission_ref"]) == ("manual", chosen["params"]["submission_ref"])


def race(item_id: str, attempts: list[tuple[httpx.Client, dict[str, Any]]]) -> list[int]:
    """Post each body at once (released together by a barrier); the status codes. A 409 must
    say in Chinese that someone else decided first."""
    start = threading.Barrier(len(attempts))
    answers: list[httpx.Response] = []

    def attempt(client: httpx.Client, body: dict[str, Any]) -> None:
        start.wait()
        answers.append(client.post(f"/api/todo/{item_id}", json=body))

    threads = [threading.Thread(target=attempt, args=pair) for pair in attempts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for answer in answers:
        if answer.status_code == 409:
            assert "已经有人处理过了" in answer.json()["message"]
            assert_reads_chinese(answer.json()["message"], where="409")
    return [answer.status_code for answer in answers]
