"""Zip and TNEF unpacking within limits, and safe file names."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest

from parsers.containers import InflationBudget, Limits, Unpacked, unpack_tnef, unpack_zip
from parsers.filenames import sanitize_filename

MIMEKIT_TNEF = Path("/work/shared/corpus/realworld/mimekit/tnef")
MIB = 1024 * 1024


def zip_bytes(entries: dict[str, bytes], *, compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    """A zip archive of `entries`, written by the stdlib (UTF-8 names flagged)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=compression) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def zip_with_gbk_names(entries: dict[str, bytes]) -> bytes:
    """A zip whose entry names are GBK bytes without the UTF-8 flag (Windows' built-in zip)."""
    gbk_by_placeholder: dict[str, bytes] = {}
    for number, name in enumerate(entries):
        encoded = name.encode("gbk")
        gbk_by_placeholder[f"{number:0{len(encoded)}d}"] = encoded
    archive = zip_bytes(dict(zip(gbk_by_placeholder, entries.values(), strict=True)))
    for placeholder, encoded in gbk_by_placeholder.items():
        archive = archive.replace(placeholder.encode("ascii"), encoded)
    return archive


def mark_entries_encrypted(data: bytes) -> bytes:
    """Set the 'encrypted' flag on every entry, as a password-protected zip has it."""
    patched = bytearray(data)
    for signature, flag_offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        start = 0
        while (found := patched.find(signature, start)) >= 0:
            patched[found + flag_offset] |= 0x01
            start = found + 4
    return bytes(patched)


def nested_zip_bomb(*, leaf_bytes: int = 20 * MIB, fan_out: int = 4, levels: int = 3) -> bytes:
    """A 42.zip-style bomb: zips of zips whose leaves are megabytes of zeros."""
    layer = zip_bytes({"zeros.bin": bytes(leaf_bytes)})
    for level in range(levels):
        layer = zip_bytes({f"layer{level}-{copy}.zip": layer for copy in range(fan_out)})
    return layer


def unpack(data: bytes, name: str = "材料.zip", limits: Limits | None = None) -> Unpacked:
    limits = limits or Limits()
    return unpack_zip(data, name, limits=limits, budget=InflationBudget(limits.max_inflated_bytes))


def test_zip_entries_come_out_with_the_archive_named_as_container():
    unpacked = unpack(zip_bytes({"推荐表.docx": b"word", "说明.txt": b"text"}))

    assert [(f.filename, f.data, f.container) for f in unpacked.files] == [
        ("推荐表.docx", b"word", "zip:材料.zip"),
        ("说明.txt", b"text", "zip:材料.zip"),
    ]
    assert unpacked.complete
    assert unpacked.problems == []


def test_gbk_entry_names_without_the_utf8_flag_are_read_as_chinese():
    archive = zip_with_gbk_names({"镕喆堃昇-推荐表.docx": b"word", "目录/盖章版.pdf": b"%PDF"})

    names = [f.filename for f in unpack(archive).files]

    assert names == ["镕喆堃昇-推荐表.docx", "目录/盖章版.pdf"]


def test_utf8_entry_names_without_the_flag_stay_utf8():
    name = "推荐表（盖章）.pdf".encode()
    placeholder = b"A" * len(name)
    archive = zip_bytes({placeholder.decode(): b"x"}).replace(placeholder, name)

    assert [f.filename for f in unpack(archive).files] == ["推荐表（盖章）.pdf"]


def test_a_nested_zip_bomb_is_stopped_with_a_problem():
    bomb = nested_zip_bomb()

    unpacked = unpack(bomb, "42.zip")

    assert not unpacked.complete
    assert any(problem.code == "zip_bomb" for problem in unpacked.problems)
    assert sum(len(f.data) for f in unpacked.files) <= Limits().max_inflated_bytes


def test_the_total_inflated_size_is_capped_even_when_each_ratio_looks_honest():
    random_like = bytes(range(256)) * 4096  # 1 MiB that barely compresses
    archive = zip_bytes({f"part{n}.bin": random_like for n in range(8)})
    limits = Limits(max_inflated_bytes=3 * MIB)

    unpacked = unpack(archive, "big.zip", limits)

    assert len(unpacked.files) == 3
    assert [p.code for p in unpacked.problems] == ["zip_bomb"]
    assert "big.zip" in unpacked.problems[0].message


def test_an_entry_lying_about_its_size_is_not_extracted_past_its_declaration():
    archive = zip_bytes({"a.bin": bytes(4 * MIB)})
    honest = zipfile.ZipFile(io.BytesIO(archive)).infolist()[0]
    declared = honest.file_size.to_bytes(4, "little")
    tiny = (1000).to_bytes(4, "little")
    forged = archive.replace(declared, tiny)

    unpacked = unpack(forged, "forged.zip")

    assert unpacked.files == []
    assert not unpacked.complete
    assert unpacked.problems


def test_password_protected_entries_are_reported_and_skipped():
    archive = mark_entries_encrypted(zip_bytes({"secret.docx": b"word"}))

    unpacked = unpack(archive, "加密.zip")

    assert unpacked.files == []
    assert [p.code for p in unpacked.problems] == ["zip_encrypted"]
    assert "加密.zip" in unpacked.problems[0].message
    assert "password" in unpacked.problems[0].message


def test_too_many_entries_are_cut_at_the_limit():
    archive = zip_bytes({f"f{n}.txt": b"x" for n in range(20)})

    unpacked = unpack(archive, limits=Limits(max_zip_entries=5))

    assert len(unpacked.files) == 5
    assert [p.code for p in unpacked.problems] == ["zip_too_many_entries"]


def test_a_damaged_zip_is_reported_not_raised():
    unpacked = unpack(b"PK\x03\x04" + b"\x00" * 40, "broken.zip")

    assert unpacked.files == []
    assert [p.code for p in unpacked.problems] == ["zip_unreadable"]


def test_a_word_document_is_not_mistaken_for_an_archive():
    docx_like = zip_bytes({"[Content_Types].xml": b"<Types/>", "word/document.xml": b"<w/>"})

    unpacked = unpack(docx_like, "form.zip")

    assert unpacked.files == []
    assert not unpacked.complete


@pytest.mark.skipif(not MIMEKIT_TNEF.is_dir(), reason="real-world corpus not present")
def test_tnef_attachments_are_extracted_with_their_names():
    data = (MIMEKIT_TNEF / "two-files.tnef").read_bytes()
    limits = Limits()

    unpacked = unpack_tnef(
        data, "winmail.dat", limits=limits, budget=InflationBudget(limits.max_inflated_bytes)
    )

    assert [f.filename for f in unpacked.files] == ["AUTHORS", "README"]
    assert {f.container for f in unpacked.files} == {"tnef:winmail.dat"}
    assert all(f.data for f in unpacked.files)


def test_a_broken_tnef_stream_is_reported_not_raised():
    limits = Limits()

    unpacked = unpack_tnef(
        b"\x78\x9f\x3e\x22garbage",
        "winmail.dat",
        limits=limits,
        budget=InflationBudget(limits.max_inflated_bytes),
    )

    assert unpacked.files == []
    assert [p.code for p in unpacked.problems] == ["tnef_empty"]


@pytest.mark.parametrize(
    ("name", "safe"),
    [
        ("推荐表.docx", "推荐表.docx"),
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\张三\\推荐表.pdf", "推荐表.pdf"),
        (".hidden", "hidden"),
        ("...", "attachment"),
        ("a\r\nBcc: x@y.z.pdf", "a Bcc_ x@y.z.pdf"),
        ("tab\there\x00.doc", "tab here .doc"),
        ('what?"*<>|.txt', "what______.txt"),
    ],
)
def test_sanitized_file_names_have_no_paths_controls_or_leading_dots(name, safe):
    assert sanitize_filename(name) == safe


def test_sanitized_file_names_are_bounded_and_keep_their_extension():
    safe = sanitize_filename("镕" * 300 + ".docx")

    assert len(safe.encode("utf-8")) <= 200
    assert safe.endswith(".docx")
    assert safe.startswith("镕")
