"""Which kind of attachment a file is, by content first and file name second.

Placeholder until the content-based detector lands: extension only.
"""

from __future__ import annotations

from parsers.model import AttachmentKind


def detect_kind(data: bytes, filename: str) -> AttachmentKind:
    """Return `form_word`, `form_pdf` or `other` for one attachment."""
    lowered = filename.lower()
    if lowered.endswith((".docx", ".doc", ".wps")):
        return "form_word"
    if lowered.endswith(".pdf") or data.startswith(b"%PDF"):
        return "form_pdf"
    return "other"
