"""`intake staff …`, `intake web` and `intake run` with the workspace, as real processes."""

from __future__ import annotations

import stat
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.support.intake_process import (
    child_environment,
    intake_command,
    local_config,
    run_intake,
    wait_until,
)
from tests.support.services import free_port
from tests.support.workspace import csrf_of

pytestmark = pytest.mark.integration


def staff(
    config: Path, *arguments: str, password: str | None = None
) -> subprocess.CompletedProcess[str]:
    """`intake staff …` with `password` on standard input."""
    return subprocess.run(
        intake_command(config, "staff", *arguments),
        input=(password + "\n") if password is not None else "",
        env=child_environment(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def reachable(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.TransportError:
        return False


@pytest.fixture
def config(tmp_path: Path) -> Path:
    port = free_port()
    path = local_config(tmp_path, f"sqlite:///{tmp_path / 'intake.db'}", web={"port": port})
    run_intake(path, "db", "upgrade", check=True)
    return path


def port_of(config: Path) -> int:
    for line in config.read_text(encoding="utf-8").splitlines():
        if line.startswith("port = "):
            return int(line.split("=")[1])
    raise AssertionError("no port in the config")


def test_staff_accounts_and_tokens_from_the_command_line(config: Path, tmp_path: Path):
    added = staff(
        config, "add", "li", "--name", "李老师", "--role", "viewer", password="long enough 1"
    )
    assert added.returncode == 0, added.stderr
    assert "long enough" not in added.stdout + added.stderr
    assert staff(config, "add", "li", password="long enough 1").returncode == 1  # exists
    assert staff(config, "add", "short", password="abc").returncode == 1  # too short
    listed = staff(config, "list")
    assert "li\t李老师\tviewer\tactive\ttokens=0" in listed.stdout
    token = staff(config, "token", "li")
    assert token.returncode == 0, token.stderr
    lines = token.stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith("intake_")
    assert lines[0] not in (tmp_path / "intake.db").read_bytes().decode("latin-1")  # stored hashed

    port = port_of(config)
    log = tmp_path / "web.log"
    with log.open("wb") as stderr:
        server = subprocess.Popen(
            intake_command(config, "web"),
            env=child_environment(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(
            lambda: reachable(f"{base}/healthz"),
            timeout=60,
            what="intake web to listen",
            evidence=lambda: log.read_text(encoding="utf-8", errors="replace"),
        )
        bearer = {"authorization": f"Bearer {lines[0]}"}
        assert httpx.get(f"{base}/api/todo", headers=bearer).json() == {"items": []}
        assert httpx.get(f"{base}/api/register", headers=bearer).status_code == 200
        with httpx.Client(base_url=base) as client:
            form = client.get("/login")
            signed = client.post(
                "/login",
                data={
                    "csrf_token": csrf_of(form.text),
                    "username": "li",
                    "password": "long enough 1",
                },
            )
            assert signed.status_code == 303
            assert "李老师" in client.get("/").text
            assert staff(config, "password", "li", password="another long one").returncode == 0
            assert client.get("/").status_code == 303  # the old session ends with the password
        assert staff(config, "token", "li", "--revoke").returncode == 0
        assert httpx.get(f"{base}/api/todo", headers=bearer).status_code == 401
        fresh = staff(config, "token", "li").stdout.strip()
        assert staff(config, "disable", "li").returncode == 0
        assert (
            httpx.get(f"{base}/api/todo", headers={"authorization": f"Bearer {fresh}"}).status_code
            == 401
        )
        assert "disabled" in staff(config, "list").stdout
    finally:
        server.terminate()
        assert server.wait(timeout=30) == 0, log.read_text(encoding="utf-8", errors="replace")
    secret = tmp_path / "archive" / "session-secret"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600


def test_intake_run_serves_the_workspace_when_enabled_and_stops_cleanly(
    tmp_path: Path, start_service
):
    port = free_port()
    config = local_config(
        tmp_path,
        f"sqlite:///{tmp_path / 'intake.db'}",
        web={"enabled": True, "port": port},
        schedule={"poll_every": "1h", "deliver_every": "1h"},
    )
    run_intake(config, "db", "upgrade", check=True)
    service = start_service(config, cwd=tmp_path)
    wait_until(
        lambda: reachable(f"http://127.0.0.1:{port}/healthz"),
        timeout=60,
        what="the workspace of intake run",
        evidence=service.log,
    )
    assert httpx.get(f"http://127.0.0.1:{port}/", follow_redirects=False).status_code == 303
    assert service.stop() == 0, service.log()
    assert not reachable(f"http://127.0.0.1:{port}/healthz")
