"""A poller in its own process, for tests that kill it: `python -m tests.support.crash_poller`.

Arguments: database URL, work directory, host, port, username, password, batch size. It runs
one `poll()` and prints the report as JSON on stdout.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

from service.ingest import poll
from service.mailbox import ImapMailbox
from tests.support.apps import make_app


def main(argv: list[str]) -> int:
    db_url, workdir, host, port, username, password, batch_size = argv
    app = make_app(
        db_url,
        Path(workdir),
        mailbox=lambda: ImapMailbox(
            host, int(port), username=username, password=password, security="plain", timeout=10.0
        ),
    )
    changed = app.settings.mailbox.model_copy(update={"batch_size": int(batch_size)})
    app.settings = app.settings.model_copy(update={"mailbox": changed})
    report = poll(app)
    print(json.dumps(dataclasses.asdict(report)), flush=True)
    app.engine.dispose()
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
