"""`intake results import`: one result mail per submission, nothing new on a re-import,
corrections only on request, the recommending unit in copy."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from service.bootstrap import App
from service.imports import import_submissions
from service.outbox import deliver
from service.results import import_results
from tests.support.apps import SAMPLE_EXPORT, make_app, run_samples
from tests.support.intake_process import local_config, run_intake
from tests.support.mailmaker import Online, at, export_csv
from tests.support.smtp_sink import SmtpSink

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
JIANGSU_CONTACT = "fudongting@js.chinamobile.example"  # 付东婷, on Jiangsu Mobile's form


def decisions(path: Path, rows: list[tuple[str, str, str]]) -> Path:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["申报编号", "结果", "备注"])
    writer.writerows(rows)
    path.write_text(buffer.getvalue(), encoding="utf-8")
    return path


def sample_app(db_url: str, tmp_path: Path, sink: SmtpSink, **sections) -> App:
    transport = sink.transport()
    app = make_app(db_url, tmp_path, transport=transport, **sections)
    run_samples(app)
    deliver(app)
    sink.clear()
    return app


def results_at(sink: SmtpSink):
    return [item for item in sink.received if item.message["X-Intake-Kind"] == "result"]


def body_of(item) -> str:
    return item.message.get_body(("plain",)).get_content()


def test_each_decision_sends_one_result_mail_with_the_recommending_unit_in_copy(
    db_url, tmp_path, smtp_sink
):
    app = sample_app(db_url, tmp_path, smtp_sink)
    path = decisions(
        tmp_path / "results.csv",
        [("KJCX2025-0002", "入选", "将收录于案例集"), ("KJCX2025-0004", "未入选", "")],
    )

    report = import_results(app, path)
    deliver(app)

    assert report.queued == 2
    mails = {item.rcpt_tos[0]: item for item in results_at(smtp_sink)}
    selected = mails["kongyu82@163.example"]
    assert selected.rcpt_tos == ["kongyu82@163.example", JIANGSU_CONTACT]
    assert selected.message["Cc"] == JIANGSU_CONTACT
    assert "入选" in body_of(selected) and "将收录于案例集" in body_of(selected)
    assert "KJCX2025-0002" in str(selected.message["Subject"])
    voluntary = mails["xubo@caae6.edu.example"]
    assert voluntary.rcpt_tos == ["xubo@caae6.edu.example"] and voluntary.message["Cc"] is None
    assert "未入选" in body_of(voluntary)
    app.engine.dispose()


def test_no_copy_to_the_unit_when_the_campaign_says_so(db_url, tmp_path, smtp_sink):
    app = sample_app(db_url, tmp_path, smtp_sink, campaign={"results_copy_unit": False})
    import_results(app, decisions(tmp_path / "r.csv", [("KJCX2025-0002", "入选", "")]))
    deliver(app)

    [mail] = results_at(smtp_sink)
    assert mail.rcpt_tos == ["kongyu82@163.example"] and mail.message["Cc"] is None
    app.engine.dispose()


def test_re_importing_the_same_decisions_sends_nothing_new(db_url, tmp_path, smtp_sink):
    app = sample_app(db_url, tmp_path, smtp_sink)
    path = decisions(
        tmp_path / "r.csv", [("KJCX2025-0002", "入选", ""), ("KJCX2025-0006", "未入选", "")]
    )
    import_results(app, path)
    deliver(app)
    again = import_results(app, path)
    deliver(app)

    assert again.queued == 0 and sorted(again.unchanged) == ["KJCX2025-0002", "KJCX2025-0006"]
    assert len(results_at(smtp_sink)) == 2
    app.engine.dispose()


def test_a_changed_decision_sends_a_correction_only_with_resend_changed(
    db_url, tmp_path, smtp_sink
):
    app = sample_app(db_url, tmp_path, smtp_sink)
    import_results(app, decisions(tmp_path / "r1.csv", [("KJCX2025-0002", "未入选", "")]))
    deliver(app)
    changed = decisions(tmp_path / "r2.csv", [("KJCX2025-0002", "入选", "复核后入选")])

    quiet = import_results(app, changed)
    deliver(app)
    assert quiet.queued == 0 and quiet.changed == ["KJCX2025-0002"]
    assert any("--resend-changed" in warning for warning in quiet.warnings)
    assert len(results_at(smtp_sink)) == 1

    # The decision is already recorded; asking again with the flag still sends the correction.
    loud = import_results(app, changed, resend_changed=True)
    deliver(app)
    assert loud.queued == 1
    first, correction = results_at(smtp_sink)
    assert "未入选" in body_of(first) and "更正" not in str(first.message["Subject"])
    assert "更正" in str(correction.message["Subject"])
    assert "有误，现更正如下" in body_of(correction) and "结果为：入选" in body_of(correction)

    assert import_results(app, changed, resend_changed=True).queued == 0
    app.engine.dispose()


def test_a_decision_changed_back_sends_a_second_correction(db_url, tmp_path, smtp_sink):
    app = sample_app(db_url, tmp_path, smtp_sink)
    for number, result in enumerate(["入选", "未入选", "入选"]):
        path = decisions(tmp_path / f"r{number}.csv", [("KJCX2025-0002", result, "")])
        import_results(app, path, resend_changed=True)
        deliver(app)

    told = [body_of(item).count("结果为：入选") for item in results_at(smtp_sink)]
    assert told == [1, 0, 1]
    app.engine.dispose()


def test_a_line_break_and_bcc_in_a_case_title_never_reach_the_headers(db_url, tmp_path, smtp_sink):
    transport = smtp_sink.transport()
    app = make_app(db_url, tmp_path, transport=transport, clock=lambda: at(21))
    export = tmp_path / "export.csv"
    export.write_bytes(
        export_csv(
            [
                Online(
                    "KJCX2025-0100",
                    "智慧港口\r\nBcc: x@evil.example",
                    "某某科技有限公司",
                    route="自愿申报",
                    email="li@applicant.example",
                )
            ]
        )
    )
    import_submissions(app, export)
    import_results(app, decisions(tmp_path / "r.csv", [("KJCX2025-0100", "入选", "")]))
    deliver(app)

    [mail] = results_at(smtp_sink)
    assert mail.rcpt_tos == ["li@applicant.example"]
    assert "Bcc" not in mail.message and "\n" not in str(mail.message["Subject"])
    app.engine.dispose()


def test_intake_results_import_on_the_command_line_queues_the_mail(sqlite_url, tmp_path):
    app = make_app(sqlite_url, tmp_path)  # the sample export, imported in this process
    import_submissions(app, SAMPLE_EXPORT)
    app.engine.dispose()
    config = local_config(tmp_path, sqlite_url)
    outbox = tmp_path / "out"

    def run(*arguments: str) -> str:
        return run_intake(config, *arguments, check=True).stdout

    path = decisions(tmp_path / "r.csv", [("KJCX2025-0002", "入选", "")])
    first = run("results", "import", str(path))
    second = run("results", "import", str(path))
    run("deliver")

    assert "1 result mail(s) queued" in first
    assert "0 result mail(s) queued" in second and "unchanged 1" in second
    assert len(list(outbox.glob("*.eml"))) == 1


def test_dry_runs_of_both_imports_print_what_would_change_and_change_nothing(sqlite_url, tmp_path):
    app = make_app(sqlite_url, tmp_path)
    import_submissions(app, SAMPLE_EXPORT)
    app.engine.dispose()
    config = local_config(tmp_path, sqlite_url)
    path = decisions(tmp_path / "r.csv", [("KJCX2025-0002", "入选", "")])

    results = run_intake(config, "results", "import", str(path), "--dry-run", check=True).stdout
    export = tmp_path / "one.csv"
    export.write_bytes(export_csv([Online("KJCX2025-0002", "新名称", "某公司")]))
    complete = run_intake(config, "submissions", "import", str(export), "--complete")
    dry = run_intake(
        config, "submissions", "import", str(export), "--complete", "--dry-run", check=True
    ).stdout
    real = run_intake(config, "results", "import", str(path), check=True).stdout

    assert "1 result mail(s) would be queued" in results and "new: KJCX2025-0002" in results
    assert complete.returncode == 1 and "--yes" in complete.stderr
    assert "would be: added 0, changed 1" in dry and "withdrawn: KJCX2025-0001" in dry
    assert "new 1" in real and "1 result mail(s) queued" in real  # the dry run recorded nothing
