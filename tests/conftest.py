"""Shared fixtures: real servers on loopback, started once per test session."""

pytest_plugins = [
    "tests.support.services",
    "tests.support.smtp_sink",
    "tests.support.dovecot",
    "tests.support.database",
]
