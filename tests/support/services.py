"""How a test asks for a server it needs: skip with instructions, or fail under CI."""

from __future__ import annotations

import os
import socket

import pytest


def services_required() -> bool:
    """`INTAKE_REQUIRE_SERVICES=1` turns every "server not found" skip into a failure."""
    return os.environ.get("INTAKE_REQUIRE_SERVICES", "") == "1"


def missing_service(what: str, how: str) -> None:
    """Skip (or fail, under INTAKE_REQUIRE_SERVICES=1) because `what` is not available."""
    message = f"{what} is not available: {how}"
    if services_required():
        pytest.fail(message + " (INTAKE_REQUIRE_SERVICES=1 forbids skipping)")
    pytest.skip(message)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
