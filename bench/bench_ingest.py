"""Ingestion throughput against a private Dovecot, compared with the floor of a bare fetch.

    .venv/bin/python bench/bench_ingest.py            # 2,000 ~150 KB + 2,000 small messages
    .venv/bin/python bench/bench_ingest.py --small    # 200 + 200, for a quick run

(a) fetch + archive + commit (poll(process=False)) vs imapclient fetching the same bodies;
(b) the whole pipeline vs that fetch plus email.message_from_bytes(policy=default);
(c) a no-op poll; (d) peak RSS of a poll of one message with a 40 MB attachment (own process).
Not a test: it prints figures. SQLite in a temp dir; Dovecot from tests/support/dovecot.py.
"""

from __future__ import annotations

import argparse
import email
import email.policy
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from service.ingest import poll  # noqa: E402
from tests.support.apps import imap_mailbox, make_app  # noqa: E402
from tests.support.bulk_mail import append_all, small_message  # noqa: E402
from tests.support.dovecot import SHARED_PASSWORD, DovecotServer  # noqa: E402


def floor_fetch(server: DovecotServer, username: str, batch_size: int) -> tuple[float, list[bytes]]:
    """imapclient alone, debug off, one connection: BODY.PEEK[] in batches."""
    started = time.perf_counter()
    bodies: list[bytes] = []
    with server.client(username) as client:
        client.select_folder("INBOX", readonly=True)
        uids = client.search("ALL")
        for start in range(0, len(uids), batch_size):
            answer = client.fetch(uids[start : start + batch_size], ["BODY.PEEK[]", "INTERNALDATE"])
            bodies.extend(answer[uid][b"BODY[]"] for uid in uids[start : start + batch_size])
    return time.perf_counter() - started, bodies


def durable_write(bodies: list[bytes], directory: Path) -> float:
    """Seconds to write `bodies` as files and make them durable with one fsync each batch.

    What any ingest that keeps mail must at least pay on this disk, beyond the fetch.
    """
    directory.mkdir(parents=True)
    started = time.perf_counter()
    for start in range(0, len(bodies), 50):
        descriptors = []
        for number, body in enumerate(bodies[start : start + 50], start=start):
            descriptor = os.open(directory / str(number), os.O_WRONLY | os.O_CREAT, 0o600)
            os.write(descriptor, body)
            descriptors.append(descriptor)
        for descriptor in descriptors:
            os.fsync(descriptor)
            os.close(descriptor)
    elapsed = time.perf_counter() - started
    shutil.rmtree(directory)
    return elapsed


def fresh_app(server: DovecotServer, username: str, workdir: Path, **sections: dict[str, Any]):
    """An App on a new SQLite database in `workdir`; `sections` override settings."""
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    return make_app(
        f"sqlite:///{workdir / 'intake.db'}",
        workdir,
        open_mailbox=imap_mailbox(server, username, SHARED_PASSWORD),
        **sections,
    )


def high_water_kib() -> int:
    """This process's peak RSS. Linux carries getrusage's ru_maxrss over fork and exec (the
    child would report the parent's peak), so VmHWM, which starts afresh at exec, is read."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def rss_child(host: str, port: int, username: str, workdir: str) -> None:
    """Poll one huge message in this process and print its peak RSS (KiB) and baseline."""
    server = DovecotServer.__new__(DovecotServer)
    server.host, server.port = host, port
    app = fresh_app(
        server, username, Path(workdir), mailbox={"max_message_size": 200 * 1024 * 1024}
    )
    baseline = high_water_kib()
    fetched = poll(app, process=False)
    after_fetch = high_water_kib()
    report = poll(app)
    peak = high_water_kib()
    print(baseline, after_fetch, peak, fetched.archived, report.processed + report.needs_attention)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="200 + 200 messages")
    parser.add_argument("--rss-child", nargs=4, help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.rss_child:
        host, port, username, workdir = arguments.rss_child
        rss_child(host, int(port), username, workdir)
        return
    count = 200 if arguments.small else 2000
    base = Path(tempfile.mkdtemp(prefix="dcb", dir="/tmp"))
    os.chmod(base, 0o755)
    server = DovecotServer(base)
    scratch = Path(
        tempfile.mkdtemp(
            prefix="bench-ingest-", dir=ROOT / "var" if (ROOT / "var").is_dir() else None
        )
    )
    try:
        server.configure()
        server.start()
        username, _ = server.user("bench")
        large = [small_message(n, run="large", attachment_size=150_000) for n in range(count)]
        small = [small_message(n, run="small") for n in range(count)]
        with server.client(username) as client:
            append_all(client, large, chunk=20)
            append_all(client, small, chunk=200)
        total_bytes = sum(map(len, large)) + sum(map(len, small))
        print(
            f"mailbox: {2 * count} messages, {total_bytes / 1e6:.1f} MB "
            f"({count} x ~{len(large[0]) // 1000} KB + {count} x ~{len(small[0]) // 1000} KB)"
        )
        batch_size = 50

        floors = [floor_fetch(server, username, batch_size)[0] for _ in range(3)]
        floor = statistics.median(floors)
        _, bodies = floor_fetch(server, username, batch_size)
        print(
            f"floor fetch (imapclient, debug off, batches of {batch_size}): {floor:.2f} s "
            f"({total_bytes / 1e6 / floor:.0f} MB/s)"
        )

        ingests = []
        for _ in range(3):
            app = fresh_app(server, username, scratch / "a")
            started = time.perf_counter()
            report = poll(app, process=False)
            ingests.append(time.perf_counter() - started)
            assert report.ok and report.archived == 2 * count, report
            app.engine.dispose()
        ingest = statistics.median(ingests)
        print(
            f"(a) fetch + archive + commit (poll(process=False)): {ingest:.2f} s, "
            f"{ingest / floor:.2f}x the floor (aim < 2x)"
        )
        durable = statistics.median(
            floor + durable_write(bodies, scratch / f"w{attempt}") for attempt in range(3)
        )
        print(
            f"    second floor, fetch + writing the same bytes durably (no database): "
            f"{durable:.2f} s; ingest is {ingest / durable:.2f}x that"
        )

        started = time.perf_counter()
        for raw in bodies:
            email.message_from_bytes(raw, policy=email.policy.default)
        parse_only = time.perf_counter() - started
        parse_floor = floor + parse_only
        app = fresh_app(server, username, scratch / "b")
        started = time.perf_counter()
        report = poll(app)
        whole = time.perf_counter() - started
        assert report.ok and report.archived == 2 * count, report
        print(
            f"(b) whole pipeline poll(): {whole:.2f} s vs floor + message_from_bytes "
            f"{parse_floor:.2f} s (parse alone {parse_only:.2f} s): {whole / parse_floor:.1f}x "
            f"(aim < 1.5x); {report.processed} processed, {report.needs_attention} attention"
        )

        noops = []
        for _ in range(7):
            started = time.perf_counter()
            report = poll(app)
            noops.append(time.perf_counter() - started)
            assert report.ok and report.listed == 0, report
        print(
            f"(c) no-op poll (connect, login, state, search, lease, cursor): "
            f"median {statistics.median(noops) * 1000:.0f} ms, min {min(noops) * 1000:.0f} ms "
            f"(aim < 50 ms)"
        )
        app.engine.dispose()

        huge_user, _ = server.user("huge")
        huge = small_message(1, run="huge", attachment_size=40 * 1024 * 1024)
        with server.client(huge_user) as client:
            append_all(client, [huge])
        child = subprocess.run(
            [sys.executable, __file__, "--rss-child", server.host, str(server.port), huge_user,
             str(scratch / "d")],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        baseline, after_fetch, peak, archived, finished = (
            int(part) for part in child.stdout.split()
        )
        size_mib = len(huge) / 1024 / 1024
        growth = (peak - baseline) / 1024
        print(
            f"(d) one {size_mib:.1f} MB message (40 MiB attachment): peak RSS {peak / 1024:.0f} "
            f"MiB, {growth:.0f} MiB above the {baseline / 1024:.0f} MiB before polling = "
            f"{growth / size_mib:.1f}x the message (aim < 3x); fetch + archive alone "
            f"{(after_fetch - baseline) / 1024 / size_mib:.1f}x; archived {archived}, "
            f"finished {finished}"
        )
        flag = " --small" if arguments.small else ""
        print(f"reproduce: .venv/bin/python bench/bench_ingest.py{flag}")
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
