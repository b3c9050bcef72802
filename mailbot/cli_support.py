"""What every command shares: the context (config, output mode), exit codes, failing cleanly."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import click
from sqlalchemy.exc import InterfaceError as SAInterfaceError
from sqlalchemy.exc import OperationalError

from mailbot.app import App, SchemaOutOfDate, load_classifier, open_app
from mailbot.config import ConfigError, Settings, load_settings, settings_from_mapping
from mailbot.heap import settle_after_startup
from mailbot.ingest import Ingestor
from mailbot.logs import configure_logging
from mailbot.rules import RuleSetError
from mailbot.store.db import describe_db_error

EX_TEMPFAIL = 75
EX_NOINPUT = 66
EX_CONFIG = 78
EX_FAILURE = 1

@dataclass
class Context:
    """What every command shares: where the config is and how to report."""

    config_path: Path
    as_json: bool = False
    config_given: bool = True

    def settings(self) -> Settings:
        try:
            settings = load_settings(self.config_path, os.environ)
        except ConfigError as exc:
            fail(f"configuration {self.config_path} is not valid:\n{exc}", EX_CONFIG)
        configure_logging(settings.logging.format, settings.logging.level)
        return settings

    def settings_or_defaults(self) -> Settings:
        """The configured settings; the built-in defaults when no config file was named or found."""
        if not self.config_given and not self.config_path.exists():
            return settings_from_mapping({}, Path.cwd())
        return self.settings()

    def app(self) -> App:
        settings = self.settings()
        try:
            return open_app(settings)
        except SchemaOutOfDate as exc:
            fail(str(exc), EX_CONFIG)
        except (OperationalError, SAInterfaceError) as exc:
            fail(f"database unavailable: {describe_db_error(exc)}", EX_TEMPFAIL)

    def ingestor(self, app: App) -> Ingestor:
        """The app's ingestor; invalid rules stop the command with file:line errors."""
        try:
            if app.classifier is None:
                app.classifier = load_classifier(app.settings)
        except RuleSetError as exc:
            fail(f"rules are not valid:\n{exc}", EX_CONFIG)
        ingestor = app.ingestor()
        settle_after_startup()
        return ingestor

    def emit(self, data: Any, text: str) -> None:
        click.echo(json.dumps(data, indent=2, ensure_ascii=False) if self.as_json else text)


def fail(message: str, code: int = EX_FAILURE) -> NoReturn:
    click.echo(f"mailbot: {message}", err=True)
    sys.exit(code)


def default_config() -> str:
    return os.environ.get("MAILBOT_CONFIG", "config.yaml")


json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


def with_json(fn: Callable[..., Any]) -> Callable[..., Any]:
    @json_option
    @click.pass_obj
    def wrapper(ctx: Context, /, as_json: bool, **kwargs: Any) -> Any:
        ctx.as_json = as_json
        return fn(ctx, **kwargs)
    wrapper.__name__ = fn.__name__
    wrapper.__doc__ = fn.__doc__
    return wrapper
