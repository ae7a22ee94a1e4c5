"""Throughput of `parse_message` against the stdlib floor on the real-world corpus.

Run: .venv/bin/python bench/bench_parse.py [corpus folder] [--repeat N]
The floor is `email.message_from_bytes(raw, policy=email.policy.default)` on the same bytes;
the ratio says how many times slower the full parse (decode, unpack, hash, classify) is.
"""

from __future__ import annotations

import argparse
import email
import email.policy
import logging
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from config.errors import ParseError
from parsers.kinds import detect_kind
from parsers.mail import parse_message

DEFAULT_CORPUS = Path("/work/shared/corpus/realworld")
COMMAND = ".venv/bin/python bench/bench_parse.py"


def load_messages(corpus: Path) -> list[bytes]:
    """Every file of the corpus (its INDEX.tsv when present) that parses as a message."""
    index = corpus / "INDEX.tsv"
    if index.is_file():
        lines = index.read_text(encoding="utf-8").splitlines()[1:]
        paths = [corpus / line.split("\t", 1)[0] for line in lines]
    else:
        paths = sorted(path for path in corpus.rglob("*") if path.suffix in {".eml", ".msg", ""})
    messages = []
    for path in paths:
        if not path.is_file():
            continue
        raw = path.read_bytes()
        try:
            parse_message(raw)
        except ParseError:
            continue
        messages.append(raw)
    return messages


def best_time(work: Callable[[Any], object], items: Sequence[Any], repeat: int) -> float:
    """The fastest of `repeat` passes of `work` over all items, in seconds."""
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        for item in items:
            work(item)
        best = min(best, time.perf_counter() - started)
    return best


def parse_with_stdlib(raw: bytes) -> object:
    """The floor: the stdlib parser with the modern policy, nothing decoded."""
    return email.message_from_bytes(raw, policy=email.policy.default)


def parse_with_intake(raw: bytes) -> object:
    """The full parse as ingestion runs it."""
    return parse_message(raw)


def main() -> None:
    """Print messages/s and MB/s for both parsers and their ratio."""
    arguments = argparse.ArgumentParser(description=__doc__)
    arguments.add_argument("corpus", nargs="?", type=Path, default=DEFAULT_CORPUS)
    arguments.add_argument("--repeat", type=int, default=3)
    options = arguments.parse_args()
    logging.disable(logging.WARNING)
    messages = load_messages(options.corpus)
    megabytes = sum(len(raw) for raw in messages) / 1e6
    floor = best_time(parse_with_stdlib, messages, options.repeat)
    ours = best_time(parse_with_intake, messages, options.repeat)
    print(f"corpus: {options.corpus} ({len(messages)} messages, {megabytes:.1f} MB)")
    for label, seconds in (("email.message_from_bytes", floor), ("parse_message", ours)):
        print(
            f"{label:>26}: {len(messages) / seconds:8.0f} messages/s "
            f"{megabytes / seconds:6.1f} MB/s ({seconds:.2f} s)"
        )
    files = [(a.data, a.filename) for raw in messages for a in parse_message(raw).attachments]
    kinds = best_time(lambda item: detect_kind(*item), files, options.repeat)
    print(f"ratio parse_message / floor: {ours / floor:.2f}x")
    print(
        f"of which parsers.kinds.detect_kind on {len(files)} files: {kinds:.2f} s; "
        f"ratio without it: {(ours - kinds) / floor:.2f}x"
    )
    print(f"reproduce: {COMMAND}")


if __name__ == "__main__":
    main()
