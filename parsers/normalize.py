"""Normalisation of names, titles and codes so that people's spellings compare equal.

Placeholder: the full rules (NFKC, quotes, suffixes, USCC check) land with matching.
"""

from __future__ import annotations

import unicodedata


def normalize_text(value: str) -> str:
    """NFKC, drop spaces and punctuation, lower-case."""
    folded = unicodedata.normalize("NFKC", value)
    return "".join(ch for ch in folded if ch.isalnum()).lower()


def normalize_uscc(value: str) -> str:
    """Full-width to half-width, no spaces or hyphens, upper case."""
    folded = unicodedata.normalize("NFKC", value)
    return "".join(ch for ch in folded if ch not in " -\t").upper()


def uscc_is_valid(value: str) -> bool:
    """Whether an (already normalised) USCC has 18 characters and a correct check character."""
    alphabet = "0123456789ABCDEFGHJKLMNPQRTUWXY"
    if len(value) != 18 or any(ch not in alphabet for ch in value):
        return False
    total = sum(alphabet.index(ch) * pow(3, i, 31) for i, ch in enumerate(value[:17]))
    return value[17] == alphabet[(31 - total % 31) % 31]
