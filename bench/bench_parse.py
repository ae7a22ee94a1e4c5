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
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from config.errors import ParseError
from parsers.mail import parse_message

DEFAULT_CORPUS = Path("/work/shared/corpus/realworld")
COMMAND = ".venv/bin/python bench/bench_parse.py"


def load_messages(corpus: Path) -> list[bytes]:
    """Every file the corpus index lists that `parse_message` accepts as a message."""
    index = corpus / "INDEX.tsv"
    paths = [line.split("\t", 1)[0] for line in index.read_text().splitlines()[1:]]
    messages = []
    for relative in paths:
        raw = (corpus / relative).read_bytes()
        try:
            parse_message(raw)
        except ParseError:
            continue
        messages.append(raw)
    return messages


def best_time(parse: Callable[[bytes], object], messages: list[bytes], repeat: int) -> float:
    """The fastest of `repeat` passes over all messages, in seconds."""
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        for raw in messages:
            parse(raw)
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
    print(f"ratio parse_message / floor: {ours / floor:.2f}x")
    print(f"reproduce: {COMMAND}")


if __name__ == "__main__":
    main()
