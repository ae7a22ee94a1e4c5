"""Render a mail context into a subject, a text part and an HTML part with Jinja2.

Templates are named `<kind>.subject.j2`, `<kind>.txt.j2` and `<kind>.html.j2`; HTML ones
extend `base.html.j2`. An override directory replaces built-in templates file by file.
Only `.html.j2` templates are autoescaped; undefined names are errors, so a typo in an
override fails loudly (and `Renderer.check()` finds it before any mail goes out).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from datetime import datetime
from pathlib import Path
from typing import Any

import jinja2

from config.errors import TemplateError
from notifications.contexts import (
    MAIL_KINDS,
    MESSAGE_KIND_LABELS,
    RESULT_LABELS,
    SUBMISSION_STATUS_LABELS,
    MailContext,
    kind_of,
    sample_context,
)

BUILTIN_TEMPLATES = Path(__file__).parent / "templates"
PARTS = ("subject", "txt", "html")

_WHITESPACE_AND_CONTROLS = re.compile(r"[\s\x00-\x1f\x7f-\x9f\u2028\u2029]+")


@dataclass(frozen=True)
class RenderedMail:
    """A mail's words: a one-line subject, a plain-text body and an HTML body."""

    subject: str
    text: str
    html: str


def format_datetime_cn(value: datetime) -> str:
    """A time as a Chinese reader expects it, in the time zone it carries: 2025年7月31日 23:59."""
    return f"{value.year}年{value.month}月{value.day}日 {value:%H:%M}"


def format_date_cn(value: datetime) -> str:
    """A date as a Chinese reader expects it: 2025年7月31日."""
    return f"{value.year}年{value.month}月{value.day}日"


def one_line(value: str) -> str:
    """Collapse every run of whitespace and control characters to one space."""
    return _WHITESPACE_AND_CONTROLS.sub(" ", value).strip()


def _autoescape(template_name: str | None) -> bool:
    return template_name is not None and template_name.endswith(".html.j2")


class Renderer:
    """Renders contexts with the built-in templates, or with overrides from `override_dir`."""

    def __init__(self, override_dir: Path | None = None) -> None:
        loaders: list[jinja2.BaseLoader] = []
        if override_dir is not None:
            loaders.append(jinja2.FileSystemLoader(override_dir))
        loaders.append(jinja2.FileSystemLoader(BUILTIN_TEMPLATES))
        self.override_dir = override_dir
        self._environment = jinja2.Environment(
            loader=jinja2.ChoiceLoader(loaders),
            autoescape=_autoescape,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
        )
        self._environment.filters["datetime_cn"] = format_datetime_cn
        self._environment.filters["date_cn"] = format_date_cn
        self._environment.globals["message_kind_labels"] = MESSAGE_KIND_LABELS
        self._environment.globals["submission_status_labels"] = SUBMISSION_STATUS_LABELS
        self._environment.globals["result_labels"] = RESULT_LABELS

    def render(self, context: MailContext) -> RenderedMail:
        """Render the subject, text and HTML of one mail; raise TemplateError naming the file."""
        kind = kind_of(context)
        variables = {item.name: getattr(context, item.name) for item in fields(context)}
        return RenderedMail(
            subject=one_line(self._render_file(f"{kind}.subject.j2", variables)),
            text=self._render_file(f"{kind}.txt.j2", variables),
            html=self._render_file(f"{kind}.html.j2", variables),
        )

    def check(self) -> list[str]:
        """Render every kind with sample data; return one sentence per problem (empty: good)."""
        problems: list[str] = []
        for kind in MAIL_KINDS:
            try:
                self.render(sample_context(kind))
            except TemplateError as exc:
                problems.append(str(exc))
        problems.extend(self._unused_overrides())
        return problems

    def _unused_overrides(self) -> list[str]:
        """Override files whose name matches no built-in template: probably a misspelling."""
        if self.override_dir is None or not self.override_dir.is_dir():
            return []
        builtin = {path.name for path in BUILTIN_TEMPLATES.glob("*.j2")}
        return [
            f"override {path} replaces no built-in template (known names: "
            f"{', '.join(sorted(builtin))}); rename or remove it"
            for path in sorted(self.override_dir.glob("*.j2"))
            if path.name not in builtin
        ]

    def _render_file(self, name: str, variables: dict[str, Any]) -> str:
        try:
            template = self._environment.get_template(name)
            return template.render(variables)
        except jinja2.TemplateSyntaxError as exc:
            where = exc.filename or exc.name or name
            raise TemplateError(
                f"template {where}, line {exc.lineno}: syntax error: {exc.message}; "
                "fix or remove the file",
                template=name,
            ) from exc
        except jinja2.TemplateNotFound as exc:
            raise TemplateError(
                f"template {name}: {exc.message or exc.name} not found in "
                f"{self.override_dir or '(no override directory)'} nor the built-in templates",
                template=name,
            ) from exc
        except Exception as exc:  # a template may fail in any way; name it and keep the cause
            raise TemplateError(
                f"template {self._origin(name)} fails to render: {type(exc).__name__}: {exc}",
                template=name,
            ) from exc

    def _origin(self, name: str) -> str:
        """Where a template comes from, so an error points at the file to fix."""
        if self.override_dir is not None and (self.override_dir / name).is_file():
            return f"{name} (override {self.override_dir / name})"
        return f"{name} (built-in)"
