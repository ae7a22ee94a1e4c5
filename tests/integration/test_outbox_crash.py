"""Kill the delivering process anywhere, restart it: every mail arrives, duplicates only in the
documented window (the server accepted, the process died before recording it), one per crash.

The process is killed at chosen points (it stops there and says so), never after a guessed delay.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.apps import make_app, register_of
from tests.support.deliver_crash import CLOCK, EXIT_STATUS
from tests.support.intake_process import REPO
from tests.support.outbox_mail import queue_results
from tests.support.smtp_sink import SmtpSink

pytestmark = pytest.mark.integration


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
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "error"},
    )
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "ready", process.stderr and process.stderr.read()
    return process


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

    counts = smtp_sink.arrivals()
    assert len(counts) == 8
    assert sorted(counts.values()) == [1] * 6 + [2] * 2  # one duplicate per crash
    assert [mail["status"] for mail in register_of(app)["outbox"]] == ["sent"] * 8
    app.engine.dispose()


KILL_POINTS = ["before:1", "after:4", "before:7", "after:1", "after:12", "before:3"]
"""Where each delivering process is SIGKILLed: just before its N-th mail goes to the server, or
just after the server accepted it (the outbox has not recorded it: that mail goes twice)."""


def test_sigkill_before_or_after_a_send_loses_nothing_and_duplicates_only_accepted_mail(
    db_url, tmp_path, smtp_sink
):
    app = make_app(db_url, tmp_path, clock=lambda: CLOCK)
    total = 60
    queue_results(app, total)

    for point in KILL_POINTS:
        process = start_delivery(db_url, tmp_path, smtp_sink, "--pause", point)
        assert process.stdout.readline().startswith("paused "), process.stderr.read()
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=60)
        process.communicate()
    finished = start_delivery(db_url, tmp_path, smtp_sink)
    assert finished.wait(timeout=60) == 0
    finished.communicate()

    counts = smtp_sink.arrivals()
    kills_after_acceptance = sum(point.startswith("after:") for point in KILL_POINTS)
    assert len(counts) == total
    assert max(counts.values()) <= 2
    assert sum(count - 1 for count in counts.values()) == kills_after_acceptance
    assert {mail["status"] for mail in register_of(app)["outbox"]} == {"sent"}
    app.engine.dispose()
