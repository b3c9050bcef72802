"""Auto-replies rendered from Jinja2 templates (text and HTML); admins may override them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from jinja2 import (
    ChoiceLoader,
    Environment,
    FileSystemLoader,
    PackageLoader,
    StrictUndefined,
    TemplateError,
    TemplateNotFound,
    select_autoescape,
)


class TemplateProblem(Exception):
    """A template that cannot be loaded or rendered; the message names it."""


@dataclass(frozen=True, slots=True)
class DueText:
    words: str
    customer_time: str | None = None


@dataclass(frozen=True, slots=True)
class ReplyContext:
    """Everything an auto-reply template may say."""

    ticket: dict[str, Any]
    severity: dict[str, str]
    team: str
    requester_name: str
    support_hours: str
    response: DueText | None
    resolution: DueText | None
    out_of_hours: bool
    clock_start: str
    missing_customer_id: bool
    notices: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Rendered:
    subject: str
    text: str
    html: str


class ReplyRenderer:
    """Loads the templates once: the admin's folder first, then the shipped ones."""

    def __init__(self, override: Path | None = None) -> None:
        loaders: list[Any] = [FileSystemLoader(str(override))] if override else []
        loaders.append(PackageLoader("mailbot", "templates"))
        # Templates are read once: an admin's change takes effect with the reload (SIGHUP)
        # that builds a new renderer, not by a file check before every mail.
        self.env = Environment(loader=ChoiceLoader(loaders), undefined=StrictUndefined,
                               autoescape=select_autoescape(["html.j2"]), auto_reload=False,
                               trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)

    def render(self, name: str, context: ReplyContext) -> Rendered:
        values = {f.name: getattr(context, f.name) for f in fields(context)}
        for name_of_due in ("response", "resolution"):  # plain mappings, as templates expect
            due = values[name_of_due]
            if due is not None:
                values[name_of_due] = asdict(due)
        return self.render_mail(name, values)

    def render_mail(self, name: str, values: Mapping[str, Any]) -> Rendered:
        """Subject, text and (when the template has one) HTML of the mail called `name`."""
        try:
            subject = self.env.get_template(f"{name}.subject.j2").render(values)
            text = self.env.get_template(f"{name}.txt.j2").render(values)
            try:
                html_template = self.env.get_template(f"{name}.html.j2")
            except TemplateNotFound:
                html = ""
            else:
                html = html_template.render(values)
        except TemplateError as exc:
            where, line = _location(exc, name)
            raise TemplateProblem(f"{where}{f':{line}' if line else ''}: {exc}") from exc
        return Rendered(" ".join(subject.split()), _tidy(text), html)


def _location(exc: TemplateError, name: str) -> tuple[str, int | None]:
    """The template file and line of an error: from a syntax error, or from the traceback,
    where Jinja puts the template's own frames for errors raised while rendering."""
    where = getattr(exc, "filename", None) or getattr(exc, "name", None)
    line = getattr(exc, "lineno", None)
    if where and line:
        return where, line
    trace, found = exc.__traceback__, None
    while trace is not None:
        if trace.tb_frame.f_code.co_filename.endswith(".j2"):
            found = trace
        trace = trace.tb_next
    if found is not None:
        return found.tb_frame.f_code.co_filename, found.tb_lineno
    return where or name, line


def _tidy(text: str) -> str:
    lines = [line.rstrip() for line in text.splitlines()]
    out: list[str] = []
    for line in lines:
        if line or (out and out[-1]):
            out.append(line)
    return "\n".join(out).strip() + "\n"
