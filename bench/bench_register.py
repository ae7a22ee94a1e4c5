"""Benchmark: reconcile 5,000 form rows with 5,000 online submissions in a real database,
then export that register as JSON and as the .xlsx workbook.

Reproduce from the repository root with:

    .venv/bin/python -m bench.bench_register [--rows 5000] [--submissions 5000] [--seed 7]
        [--database-url sqlite:///tmp/bench.db]

Prints the wall time of each step (untraced) and its peak traced memory (tracemalloc, in a
separate run), how the rows were decided, how many accepted matches were wrong (must be
zero), the export sizes and the process's max RSS.
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
import tracemalloc
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from sqlmodel import Session, col, select

from bench.bench_matching import Workload, build_workload
from config.settings import Settings
from notifications.render import Renderer
from notifications.transport import RecordingTransport
from parsers.normalize import normalize_unit
from service.archive import Archive
from service.bootstrap import App
from service.db import create_db_engine, upgrade_schema
from service.mailbox import DirectoryMailbox
from service.models import Attachment, CaseRow, Message, Recommendation, Submission
from service.reconcile import reconcile
from service.register import build_register
from service.workbook import register_workbook

T = TypeVar("T")
NOW = datetime(2025, 7, 20, 9, 0, tzinfo=UTC)


def make_app(url: str, workdir: Path) -> App:
    """An App on `url` with a recording transport: nothing leaves the machine."""
    settings = Settings(database={"url": url}, storage={"path": workdir / "archive"})
    engine = create_db_engine(url)
    upgrade_schema(engine)
    return App(
        settings=settings,
        engine=engine,
        archive=Archive(workdir / "archive"),
        open_mailbox=lambda: DirectoryMailbox(workdir),
        transport=RecordingTransport(),
        renderer=Renderer(),
        clock=lambda: NOW,
    )


def load(app: App, workload: Workload) -> None:
    """Submissions as an import leaves them; one complete recommendation per synthetic form."""
    with Session(app.engine) as session:
        for candidate in workload.submissions:
            session.add(
                Submission(
                    ref=candidate.ref,
                    title=candidate.title,
                    applicant=candidate.applicant,
                    route=candidate.route,
                    recommender=candidate.recommender,
                    email=f"{candidate.ref.lower()}@applicant.example",
                    contact="联系人",
                    imported_at=NOW,
                )
            )
        message = Message(
            account="bench",
            folder="INBOX",
            uidvalidity=1,
            uid=1,
            sha256="0" * 64,
            size=1,
            received_at=NOW,
            archived_at=NOW,
            status="processed",
            kind="recommendation",
            sender="unit@unit.example",
        )
        session.add(message)
        session.flush()
        files = [
            Attachment(
                message_pk=message.id or 0,
                position=position,
                filename=name,
                safe_name=name,
                sha256=str(position) * 64,
                size=1,
                kind=kind,
                seal="present" if kind == "form_pdf" else None,
                placed=True,
            )
            for position, (name, kind) in enumerate(
                (("推荐表.docx", "form_word"), ("推荐表（盖章）.pdf", "form_pdf"))
            )
        ]
        session.add_all(files)
        session.flush()
        for number, (unit, rows) in enumerate(workload.forms):
            recommendation = Recommendation(
                unit=unit,
                unit_key=f"{normalize_unit(unit)}#{number}",
                sender="unit@unit.example",
                word_attachment_id=files[0].id,
                pdf_attachment_id=files[1].id,
                created_at=NOW,
            )
            session.add(recommendation)
            session.flush()
            session.add_all(
                CaseRow(
                    recommendation_id=recommendation.id or 0,
                    row=row.row,
                    title=row.title,
                    applicant=row.applicant,
                    ref_on_form=row.ref,
                )
                for row in rows
            )
        session.commit()


def timed(action: Callable[[], T]) -> tuple[T, float]:
    """Run `action`; its result and wall seconds (untraced: tracemalloc slows Python down)."""
    started = time.perf_counter()
    result = action()
    return result, time.perf_counter() - started


def peak_of(action: Callable[[], object]) -> float:
    """Peak MiB that tracemalloc saw while `action` ran."""
    tracemalloc.start()
    action()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak / 1_048_576


def run_reconcile(app: App) -> None:
    with Session(app.engine) as session:
        reconcile(app, session)
        session.commit()


def outcomes(app: App, workload: Workload) -> tuple[Counter[str], int]:
    """How rows were decided and how many accepted matches point to the wrong submission."""
    with Session(app.engine) as session:
        recommendations = session.exec(
            select(Recommendation).order_by(col(Recommendation.id))
        ).all()
        number_of = {row.id: number for number, row in enumerate(recommendations)}
        decided: Counter[str] = Counter()
        wrong = 0
        for row in session.exec(select(CaseRow)).all():
            decided[row.match] += 1
            expected = workload.expected[(number_of[row.recommendation_id], row.row)]
            if row.submission_ref is not None and row.submission_ref != expected:
                wrong += 1
    return decided, wrong


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--submissions", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--database-url", default=None, help="default: SQLite in a temp dir")
    arguments = parser.parse_args()

    with tempfile.TemporaryDirectory() as directory:
        workdir = Path(directory)
        url = arguments.database_url or f"sqlite:///{workdir / 'bench.db'}"
        app = make_app(url, workdir)
        workload = build_workload(arguments.rows, arguments.submissions, arguments.seed)
        _, load_seconds = timed(lambda: load(app, workload))
        _, first_seconds = timed(lambda: run_reconcile(app))
        decided, wrong = outcomes(app, workload)
        _, again_seconds = timed(lambda: run_reconcile(app))
        again_peak = peak_of(lambda: run_reconcile(app))

        def register() -> dict[str, Any]:
            with Session(app.engine) as session:
                return build_register(session, app.settings)

        built, register_seconds = timed(register)
        register_peak = peak_of(register)
        text, json_seconds = timed(lambda: json.dumps(built, ensure_ascii=False, indent=1))
        json_peak = peak_of(lambda: json.dumps(built, ensure_ascii=False, indent=1))
        workbook, xlsx_seconds = timed(lambda: register_workbook(built))
        xlsx_peak = peak_of(lambda: register_workbook(built))
        queued = Counter(str(row["kind"]) for row in built["outbox"])
        app.engine.dispose()

    rows = sum(len(form_rows) for _, form_rows in workload.forms)
    print(
        f"database: {url.split(':', 1)[0]}; {rows} form rows on {len(workload.forms)} forms, "
        f"{len(workload.submissions)} submissions (seed {arguments.seed})"
    )
    print(f"load (setup):          {load_seconds:7.2f} s")
    print(
        f"reconcile, first run:  {first_seconds:7.2f} s  "
        f"({1000 * first_seconds / rows:.2f} ms/row; matches and queues "
        f"{queued['applicant_receipt']} applicant receipts)"
    )
    print(f"  decided: {dict(sorted(decided.items()))}; wrong accepted matches: {wrong}")
    print(
        f"reconcile, re-run:     {again_seconds:7.2f} s  peak {again_peak:6.1f} MiB  "
        "(what every import does; nothing new to queue)"
    )
    print(f"build_register:        {register_seconds:7.2f} s  peak {register_peak:6.1f} MiB")
    print(
        f"JSON export:           {json_seconds:7.2f} s  peak {json_peak:6.1f} MiB  "
        f"{len(text.encode()) / 1_048_576:.1f} MiB"
    )
    print(
        f"XLSX export:           {xlsx_seconds:7.2f} s  peak {xlsx_peak:6.1f} MiB  "
        f"{len(workbook) / 1_048_576:.1f} MiB"
    )
    print(
        f"max RSS of the process: "
        f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB"
    )
    print(
        "reproduce: .venv/bin/python -m bench.bench_register "
        f"--rows {arguments.rows} --submissions {arguments.submissions} --seed {arguments.seed}"
    )
    if wrong:
        raise SystemExit(f"{wrong} wrong matches")


if __name__ == "__main__":
    main()
