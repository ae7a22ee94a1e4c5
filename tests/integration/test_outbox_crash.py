"""Kill the delivering process anywhere, restart it: every mail arrives, duplicates only in the
documented window (the server accepted, the process died before recording it), one per crash.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from sqlmodel import Session

from notifications.contexts import ResultNotice
from service.bootstrap import App
from service.outbox import queue_mail
from tests.support.apps import make_app, register_of
from tests.support.deliver_crash import CLOCK, EXIT_STATUS
from tests.support.smtp_sink import SmtpSink

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def queue_results(app: App, count: int) -> None:
    """`count` result mails, each to its own applicant."""
    with Session(app.engine) as session:
        for number in range(1, count + 1):
            ref = f"KJCX2025-{number:04d}"
            queue_mail(
                app,
                session,
                key=f"result:{ref}:1:selected",
                context=ResultNotice(
                    campaign_name=app.settings.campaign.name,
                    submission_ref=ref,
                    submission_title=f"案例{number}",
                    applicant=f"申报单位{number}",
                    contact_name="李娜",
                    result="selected",
                ),
                to=[f"applicant{number}@example.cn"],
                submission_ref=ref,
            )
        session.commit()


def start_delivery(
    db_url: str, workdir: Path, sink: SmtpSink, *extra: str
) -> subprocess.Popen[str]:
    """`deliver()` in a new process; returns once it has printed `ready`."""
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.support.deliver_crash",
            "--db",
            db_url,
            "--workdir",
            str(workdir),
            "--port",
            str(sink.port),
            *extra,
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "error"},
    )
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "ready", process.stderr and process.stderr.read()
    return process


def arrivals(sink: SmtpSink) -> Counter[str]:
    """How many times each outgoing Message-ID reached the server."""
    return Counter(str(item.message["Message-ID"]).strip() for item in sink.received)


def test_a_crash_after_the_server_accepted_sends_that_one_mail_again_and_no_other(
    db_url, tmp_path, smtp_sink
):
    app = make_app(db_url, tmp_path, clock=lambda: CLOCK)
    queue_results(app, 8)

    for _ in range(2):
        crashed = start_delivery(db_url, tmp_path, smtp_sink, "--exit-after", "3")
        assert crashed.wait(timeout=60) == EXIT_STATUS
        crashed.communicate()
    finished = start_delivery(db_url, tmp_path, smtp_sink)
    assert finished.wait(timeout=60) == 0
    finished.communicate()

    counts = arrivals(smtp_sink)
    assert len(counts) == 8
    assert sorted(counts.values()) == [1] * 6 + [2] * 2  # one duplicate per crash
    assert [mail["status"] for mail in register_of(app)["outbox"]] == ["sent"] * 8
    app.engine.dispose()


def test_sigkill_at_random_moments_loses_nothing_and_duplicates_at_most_one_mail_per_kill(
    db_url, tmp_path, smtp_sink
):
    app = make_app(db_url, tmp_path, clock=lambda: CLOCK)
    total = 60
    queue_results(app, total)
    seed = random.randrange(1_000_000)
    chance = random.Random(seed)

    kills = 0
    for _ in range(6):
        process = start_delivery(db_url, tmp_path, smtp_sink)
        time.sleep(chance.uniform(0.0, 0.25))
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            kills += 1
        process.wait(timeout=60)
        process.communicate()
    finished = start_delivery(db_url, tmp_path, smtp_sink)
    assert finished.wait(timeout=60) == 0
    finished.communicate()

    counts = arrivals(smtp_sink)
    duplicates = sum(count - 1 for count in counts.values())
    assert len(counts) == total, f"seed {seed}"
    assert max(counts.values()) <= 2, f"seed {seed}"
    assert duplicates <= kills, f"seed {seed}: {duplicates} duplicates after {kills} kills"
    assert {mail["status"] for mail in register_of(app)["outbox"]} == {"sent"}
    app.engine.dispose()
