"""A poller in its own process, for tests that kill it: `python -m tests.support.crash_poller`.

Arguments: database URL, work directory, host, port, username, password, batch size. It runs
one `poll()`, prints a `progress DONE TOTAL` line per archived batch (so a test can kill it
mid-poll rather than guess with a timer) and the report as JSON as its last line.
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
        open_mailbox=lambda: ImapMailbox(
            host, int(port), username=username, password=password, security="plain", timeout=10.0
        ),
        mailbox={"batch_size": int(batch_size)},
    )
    report = poll(app, progress=lambda done, total: print(f"progress {done} {total}", flush=True))
    print(json.dumps(dataclasses.asdict(report)), flush=True)
    app.engine.dispose()
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
