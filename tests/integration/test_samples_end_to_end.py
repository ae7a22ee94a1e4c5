"""The bundled samples, run through real IMAP, a real database and a real SMTP sink,
end exactly as truth.json says, in the terms of `intake export --format json`."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from service.ingest import poll
from service.outbox import deliver
from service.processing import rebuild_all
from tests.support.apps import (
    TRUTH,
    append_samples,
    imap_mailbox,
    make_app,
    register_of,
    run_samples,
)
from tests.support.intake_process import local_config, run_intake

pytestmark = pytest.mark.integration


def assert_register_matches_truth(register: dict[str, Any]) -> None:
    """Every scored fact of truth.json holds in the register."""
    truth = TRUTH
    assert register["campaign"] == truth["campaign"]
    assert len(register["messages"]) == truth["counts"]["messages"]
    messages = {message["message_id"]: message for message in register["messages"]}
    for expected in truth["messages"]:
        message = messages[expected["message_id"]]
        assert message["kind"] == expected["kind"], expected["file"]
        assert message["late"] == expected["late"], expected["file"]
        assert message["sender"] == expected["sender"]
        if expected["needs_attention"] is not None:
            wanted = "needs_attention" if expected["needs_attention"] else "processed"
            assert message["status"] == wanted, (expected["file"], message["problems"])
        attachments = {item["sha256"]: item for item in message["attachments"]}
        for item in expected["attachments"]:
            assert attachments[item["sha256"]]["filename"] == item["filename"]
            assert attachments[item["sha256"]]["size"] == item["size"]
            assert attachments[item["sha256"]]["kind"] == item["kind"], item["filename"]
        receipts = [
            mail
            for mail in register["outbox"]
            if mail["kind"] == "unit_receipt" and mail["message_id"] == expected["message_id"]
        ]
        if expected["unit_receipt"] is True:
            assert len(receipts) == 1, expected["file"]
            assert receipts[0]["to"] == [expected["sender"]]
        elif expected["unit_receipt"] is False:
            assert receipts == [], expected["file"]

    current = [row for row in register["recommendations"] if row["current"]]
    assert len(current) == truth["counts"]["recommending_units"]
    by_unit = {row["unit"]: row for row in current}
    for expected in truth["recommendations"]:
        recommendation = by_unit[expected["unit"]]
        assert recommendation["version"] == expected["version"]
        assert recommendation["complete"] == expected["complete"]
        assert recommendation["contact"] == expected["contact"]
        for part in ("message_id", "filename", "sha256"):
            assert recommendation["word"][part] == expected["word"][part]
            assert recommendation["pdf"][part] == expected["pdf"][part]
        assert recommendation["pdf"]["seal"] == expected["pdf"]["seal"]
        assert len(recommendation["cases"]) == len(expected["cases"])
        for case, wanted in zip(recommendation["cases"], expected["cases"], strict=True):
            assert case["row"] == wanted["row"]
            assert case["title"] == wanted["title_on_form"].strip()
            assert case["applicant"] == wanted["applicant_on_form"].strip()
            assert case["category"] == wanted["category_on_form"]
            assert case["ref_on_form"] == wanted["ref_on_form"]
            assert case["match"] in wanted["match"], (expected["unit"], case)
            if wanted["submission_ref"] == "ambiguous":
                assert case["submission_ref"] is None
            else:
                assert case["submission_ref"] == wanted["submission_ref"], (expected["unit"], case)

    submissions = {row["ref"]: row for row in register["submissions"]}
    assert len(submissions) == truth["counts"]["submissions"]
    assert Counter(row["route"] for row in submissions.values()) == Counter(
        recommended=truth["counts"]["recommended"], voluntary=truth["counts"]["voluntary"]
    )
    units_by_id = {row["id"]: row["unit"] for row in register["recommendations"]}
    for expected in truth["submissions"]:
        submission = submissions[expected["ref"]]
        assert submission["route"] == expected["route"]
        assert submission["uscc_valid"] == expected["uscc_valid"]
        assert submission["status"] in [expected["status"], *expected["status_also_acceptable"]]
        assert units_by_id.get(submission["recommendation_id"]) == expected["matched_on_unit"]
        receipts = [
            mail
            for mail in register["outbox"]
            if mail["kind"] == "applicant_receipt" and mail["submission_ref"] == expected["ref"]
        ]
        bounds = expected["applicant_receipts"]
        assert bounds["min"] <= len(receipts) <= bounds["max"], expected["ref"]
        assert all(mail["to"] == [expected["email"]] for mail in receipts)


def test_samples_through_dovecot_and_smtp_end_as_truth_says(db_url, tmp_path, dovecot, smtp_sink):
    username, password = dovecot.user("cases")
    append_samples(dovecot, username)
    transport = smtp_sink.transport()
    app = make_app(
        db_url,
        tmp_path,
        open_mailbox=imap_mailbox(dovecot, username, password),
        transport=transport,
        ocr={"enabled": True},  # the two image-only scans are read by the real engine
    )
    report = run_samples(app)
    assert report.ok and report.archived == 4
    delivered = deliver(app)
    register = register_of(app)
    assert_register_matches_truth(register)
    assert delivered.sent == len(register["outbox"]) == len(smtp_sink.received)
    assert all(mail["status"] == "sent" for mail in register["outbox"])
    app.engine.dispose()


def test_a_second_poll_and_a_reprocess_change_nothing_and_send_nothing_more(db_url, tmp_path):
    app = make_app(db_url, tmp_path)
    run_samples(app)
    before = register_of(app)
    assert poll(app).archived == 0
    rebuild_all(app)
    after = register_of(app)
    assert_register_matches_truth(after)
    assert after["outbox"] == before["outbox"]
    assert [row["unit"] for row in after["recommendations"]] == [
        row["unit"] for row in before["recommendations"]
    ]
    app.engine.dispose()


def test_intake_export_prints_the_register_as_json(sqlite_url: str, tmp_path: Path):
    app = make_app(sqlite_url, tmp_path)  # the samples run in this process; the export is printed
    run_samples(app)
    app.engine.dispose()

    exported = run_intake(
        local_config(tmp_path, sqlite_url), "export", "--format", "json", check=True
    )
    assert_register_matches_truth(json.loads(exported.stdout))
