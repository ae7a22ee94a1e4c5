"""Does person-facing text read as Chinese? Finds English words and command lines in it.

Excepted, because people meet them as they are: e-mail addresses, URLs, Message-IDs, file
names, refs such as KJCX2025-0005, hashes, upper-case acronyms (5G, AI, ICT, PDF) and the
names of the programs senders use (Word, WPS, Excel).
"""

from __future__ import annotations

import re

PRODUCT_NAMES = {
    "word",
    "wps",
    "excel",
    "docx",
    "doc",
    "xlsx",
    "pdf",
    "csv",
    "zip",
    "ofd",
    "msg",
    "eml",
}
"""Names people know their programs and formats by."""

_EXCEPTED = [
    re.compile(r"https?://[^\s<>\"'，。；）)]+"),  # URLs
    re.compile(r"<[^<>\s]+@[^<>\s]+>"),  # Message-IDs
    re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+"),  # addresses
    re.compile(
        r"[^\s《》「」“”\"'（）()，。；：:、]+\.(?:docx?|pdf|xlsx?|xlsm|zip|rar|7z|wps|csv|eml|"
        r"txt|dat|jpe?g|png|ofd|bin|tif{1,2})\b",
        re.IGNORECASE,
    ),  # file names
    re.compile(r"\b[A-Za-z]{2,}\d{2,}[-_]?\d*\b"),  # refs: KJCX2025-0005, ICT2025-0012
    re.compile(r"\b[0-9a-f]{12,}\b"),  # hashes
    re.compile(r"<!DOCTYPE[^>]*>", re.IGNORECASE),
    re.compile(r"</?[a-z][a-z0-9]*(?:\s[^<>]*)?>", re.IGNORECASE),  # HTML tags (rendered mail)
    re.compile(r"&[a-z]+;|&#\d+;"),  # HTML entities
]
_COMMAND = [
    re.compile(r"`[^`]+`"),
    re.compile(r"\bintake\s+[a-z][a-z-]*"),
    re.compile(r"(?<![\w-])--[a-z][a-z-]+"),
    re.compile(r"\b(?:apt|pip|sudo|systemctl)\s+\S+"),
]
_WORD = re.compile(r"[A-Za-z][A-Za-z_']*")


def english_in(text: str) -> list[str]:
    """The English words and command lines in `text`, in order (empty: it reads as Chinese)."""
    found: list[str] = []
    rest = text
    for pattern in _COMMAND:
        found.extend(match.group(0) for match in pattern.finditer(rest))
        rest = pattern.sub(" ", rest)
    for pattern in _EXCEPTED:
        rest = pattern.sub(" ", rest)
    for match in _WORD.finditer(rest):
        word = match.group(0)
        if len(word) == 1 or word.casefold() in PRODUCT_NAMES:
            continue
        if word.isupper() and len(word) <= 6:  # acronyms: AI, ICT, IPTV
            continue
        found.append(word)
    return found


def assert_reads_chinese(text: str, where: str) -> None:
    """Fail, naming `where` and the words, when `text` holds English or a command line."""
    words = english_in(text)
    assert not words, f"{where}: English or a command in what a person reads: {words[:20]}"
