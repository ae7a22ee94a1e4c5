"""The documentation in the repository stays true: every setting is documented, links resolve."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import BaseModel

from config.settings import Settings

REPO = Path(__file__).resolve().parents[2]
CONFIGURATION = REPO / "docs" / "configuration.md"
DOCUMENTS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def documented_sections() -> dict[str, str]:
    """The text of each `## `[section]`` part of docs/configuration.md, by section name."""
    text = CONFIGURATION.read_text(encoding="utf-8")
    parts = re.split(r"^## `\[([a-z_]+)\]`\s*$", text, flags=re.MULTILINE)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def setting_keys() -> list[tuple[str, str]]:
    keys = []
    for section, field in Settings.model_fields.items():
        model = field.annotation
        assert isinstance(model, type) and issubclass(model, BaseModel), section
        keys.extend((section, key) for key in model.model_fields)
    return keys


@pytest.mark.parametrize(("section", "key"), setting_keys())
def test_every_setting_is_in_docs_configuration_md_under_its_section(section, key):
    sections = documented_sections()
    assert section in sections, f"docs/configuration.md has no section [{section}]"
    assert re.search(rf"^\| `{key}` \|", sections[section], flags=re.MULTILINE), (
        f"docs/configuration.md does not document {section}.{key} (add a row `| `{key}` | …`)"
    )


def test_docs_configuration_md_documents_no_setting_that_does_not_exist():
    known = set(setting_keys())
    for section, text in documented_sections().items():
        for key in re.findall(r"^\| `([a-z_]+)` \|", text, flags=re.MULTILINE):
            assert (section, key) in known, f"configuration.md: {section}.{key} is not a setting"


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: path.name)
def test_the_documentation_links_only_to_files_in_the_repository(document):
    text = document.read_text(encoding="utf-8")
    assert "../shared" not in text
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
        if re.match(r"[a-z]+:", target):
            continue  # a URL
        assert (document.parent / target).exists(), f"{document.name} links to missing {target}"
