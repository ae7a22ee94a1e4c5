"""`intake` as a real process: a settings file, one command run to completion, or `intake run`
left running until the test stops it; and what such a process shows (HTTP, the SMTP sink)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from service.db import create_db_engine

REPO = Path(__file__).resolve().parents[2]
STOP_TIMEOUT = 120.0  # generous: the machine may be busy; a hang still fails


# -- settings files -------------------------------------------------------------------------


def write_config(path: Path, sections: Mapping[str, Mapping[str, Any]]) -> Path:
    """A TOML settings file from plain sections (strings, numbers, booleans, lists)."""
    lines: list[str] = []
    for section, values in sections.items():
        lines.append(f"[{section}]")
        lines.extend(
            f"{key} = {json.dumps(value, ensure_ascii=False)}" for key, value in values.items()
        )
        lines.append("")
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def local_config(workdir: Path, database_url: str, **extra: dict[str, Any]) -> Path:
    """`workdir/intake.toml`: the database, an archive and an outgoing-mail folder in `workdir`
    (`out/`), nothing sent over the network; `extra` sections are added or merged."""
    sections: dict[str, dict[str, Any]] = {
        "database": {"url": database_url},
        "storage": {"path": str(workdir / "archive")},
        "smtp": {"kind": "file", "path": str(workdir / "out")},
        # the tests' mailboxes hold a season of mail at the first poll: reply to it
        "campaign": {"reply_to_old_mail": True},
        "ocr": {"enabled": False},  # OCR (seconds a page) only where a test asks for it
    }
    for section, values in extra.items():
        sections.setdefault(section, {}).update(values)
    return write_config(workdir / "intake.toml", sections)


def service_config(
    workdir: Path,
    *,
    database_url: str,
    dovecot: Any,
    username: str,
    password: str,
    smtp_sink: Any,
    archive: Path | None = None,
    **extra: dict[str, Any],
) -> Path:
    """Settings for `intake run` against the Dovecot fixture (plain, loopback) and the sink."""
    sections: dict[str, dict[str, Any]] = {
        "database": {"url": database_url},
        "storage": {"path": str(archive or workdir / "archive")},
        "mailbox": {
            "kind": "imap",
            "host": dovecot.host,
            "port": dovecot.port,
            "security": "plain",
            "username": username,
            "password": password,
            "timeout": "10s",
        },
        "smtp": {
            "kind": "smtp",
            "host": smtp_sink.host,
            "port": smtp_sink.port,
            "security": "plain",
            "timeout": "10s",
        },
        "schedule": {"poll_every": "1s", "deliver_every": "1s"},
        "campaign": {"reply_to_old_mail": True},
        "ocr": {"enabled": False},  # OCR (seconds a page) only where a test asks for it
    }
    for section, values in extra.items():
        sections.setdefault(section, {}).update(values)
    return write_config(workdir / "intake.toml", sections)


# -- one command ------------------------------------------------------------------------------


def intake_command(config: Path | None, *arguments: str) -> list[str]:
    """`intake [--config FILE] ARGUMENTS…` as this interpreter runs it."""
    chosen = ["--config", str(config)] if config is not None else []
    return [sys.executable, "-m", "service", *chosen, *arguments]


def child_environment(**overrides: str) -> dict[str, str]:
    """This environment without INTAKE_* overrides or FORCE_COLOR, with the repository
    importable, and `overrides` on top."""
    environment = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("INTAKE_") and name != "FORCE_COLOR"
    }
    environment["PYTHONPATH"] = str(REPO)
    environment.update(overrides)
    return environment


def run_intake(
    config: Path | None,
    *arguments: str,
    cwd: Path = REPO,
    env: Mapping[str, str] | None = None,
    check: bool = False,
) -> subprocess.CompletedProcess[str]:
    """Run one `intake` command to completion and return what it printed; `env` adds to the
    child's environment; `check=True` fails the test (showing stderr) on a non-zero exit."""
    done = subprocess.run(
        intake_command(config, *arguments),
        cwd=cwd,
        env=child_environment(**(env or {})),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if check and done.returncode != 0:
        pytest.fail(
            f"intake {' '.join(arguments)} exited {done.returncode}:\n{done.stderr}", pytrace=False
        )
    return done


# -- `intake run` -------------------------------------------------------------------------------


def wait_until(
    condition: Callable[[], bool],
    *,
    timeout: float,
    what: str,
    evidence: Callable[[], str] | None = None,
) -> None:
    """Check `condition` every 0.2 s; fail naming `what`, showing `evidence`, if it never holds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    shown = f"\n{evidence()}" if evidence else ""
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}{shown}")


class RunningService:
    """One `intake run` child process; stderr goes to a file the test can read."""

    def __init__(self, config: Path, *, cwd: Path, name: str = "intake") -> None:
        self.log_path = cwd / f"{name}.stderr.log"
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            intake_command(config, "run"),
            cwd=cwd,
            env=child_environment(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=self._log,
        )

    def log(self) -> str:
        """Everything the service wrote to stderr so far."""
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> int:
        """Send `sig` and return the exit status once the process has ended."""
        self.process.send_signal(sig)
        try:
            return self.process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            pytest.fail(f"intake run did not stop within {STOP_TIMEOUT:.0f} s of {sig.name}")

    def close(self) -> None:
        """Kill the process if a test left it running; close the log."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._log.close()


@contextmanager
def service_starter() -> Iterator[Callable[..., RunningService]]:
    """Start `intake run` processes; any still running at the end are killed."""
    started: list[RunningService] = []

    def start(config: Path, *, cwd: Path, name: str = "intake") -> RunningService:
        service = RunningService(config, cwd=cwd, name=name)
        started.append(service)
        return service

    try:
        yield start
    finally:
        for service in started:
            service.close()


@pytest.fixture
def start_service() -> Iterator[Callable[..., RunningService]]:
    """Start `intake run` processes; any still running at the end are killed."""
    with service_starter() as start:
        yield start


# -- what a running service shows ---------------------------------------------------------------


def in_reply_to(item: Any) -> str:
    """The In-Reply-To id of a received mail (a long one arrives folded onto its own line)."""
    return str(item.message["In-Reply-To"] or "").strip()


def unit_receipts_at(sink: Any) -> Counter[str]:
    """How many mails the sink holds in reply to each inbound Message-ID."""
    return Counter(in_reply_to(item) for item in sink.received if item.message["In-Reply-To"])


def sink_summary(sink: Any) -> str:
    """Who got what at the sink, for failure messages."""
    return "\n".join(
        f"{item.rcpt_tos} {item.message['Subject']} in reply to {item.message['In-Reply-To']}"
        for item in sink.received
    )


def http_get(url: str) -> tuple[int, str, str]:
    """(status, content type, body) of a GET, 4xx/5xx included."""
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            return answer.status, answer.headers["Content-Type"], answer.read().decode("utf-8")
    except urllib.error.HTTPError as error:
        return error.code, error.headers["Content-Type"], error.read().decode("utf-8")


def metric_value(metrics: str, name: str) -> float | None:
    """The value of an unlabelled sample in Prometheus text, if present."""
    for line in metrics.splitlines():
        if line.startswith(f"{name} "):
            return float(line.split()[1])
    return None


def counted_rows(database_url: str, table: str) -> int:
    """Rows in `table`, read with a separate engine."""
    engine = create_db_engine(database_url)
    try:
        with engine.connect() as connection:
            return int(connection.execute(sa.text(f"select count(*) from {table}")).scalar_one())
    finally:
        engine.dispose()
