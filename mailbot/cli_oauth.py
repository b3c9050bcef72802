"""`mailbot oauth login` (device or browser flow, stores the grant) and `mailbot oauth status`."""

from __future__ import annotations

import sys
from datetime import timedelta
from typing import Any

import click

from mailbot.cli_support import EX_FAILURE, Context, fail, with_json
from mailbot.oauth.browser import BrowserPrompt, browser_login
from mailbot.oauth.device import device_login
from mailbot.oauth.endpoint import DeviceCode, TokenAnswer, TokenEndpoint
from mailbot.oauth.errors import OAuthUnavailable
from mailbot.oauth.grants import SMTP_GRANT, GrantSpec, grants, imap_grant_name
from mailbot.oauth.tokens import store_login
from mailbot.store.models import OAuthToken
from mailbot.units import format_duration, parse_duration
from mailbot.views import iso, table

STATUS_COLUMNS = [("for", "for"), ("auth", "auth"), ("provider", "provider"),
                  ("state", "state"), ("access_expires_at", "access token until"),
                  ("rotated_at", "refresh token rotated"), ("last_error", "last error")]


@click.group("oauth")
def oauth_group() -> None:
    """OAuth2 logins of mailboxes and of SMTP."""


@oauth_group.command("login")
@click.argument("mailbox", required=False)
@click.option("--smtp", "for_smtp", is_flag=True, help="The smtp section's login.")
@click.option("--timeout", default="10m", show_default=True, metavar="DURATION",
              help="Browser flow: how long to wait for the redirect or a pasted address.")
@click.pass_obj
def oauth_login(ctx: Context, mailbox: str | None, for_smtp: bool, timeout: str) -> None:
    """Log MAILBOX (or --smtp) in and store its refresh token.

    The device flow shows a URL and a code; the browser flow (Google's default, or
    `login_flow: browser`) shows a URL whose redirect comes back to mailbot, or whose
    redirected address is pasted here.
    """
    if bool(mailbox) == for_smtp:
        fail("name one MAILBOX, or --smtp")
    try:
        wait = parse_duration(timeout)
    except ValueError as exc:
        fail(f"--timeout: {exc}")
    app = ctx.app()
    wanted = SMTP_GRANT if for_smtp else imap_grant_name(mailbox or "")
    spec = next((g for g in grants(app.settings) if g.name == wanted), None)
    if spec is None:
        configured = ", ".join(g.mailbox or "--smtp" for g in grants(app.settings)) or "none"
        fail(f"{'smtp' if for_smtp else f'mailbox {mailbox}'} has no auth: oauth2 "
             f"(configured for OAuth2: {configured})")
    try:
        answer = _login(spec, wait)
        row = store_login(app.db, spec.name, spec.client.provider, answer, app.clock.now())
    except OAuthUnavailable as exc:
        fail(f"login for {spec.who} failed: {exc}")
    until = row.access_expires_at.isoformat(timespec="seconds") if row.access_expires_at \
        else "unknown"
    click.echo(f"stored the grant for {spec.who}; access token valid until {until}. "
               "mailbot refreshes it from now on.")


def _login(spec: GrantSpec, wait: timedelta) -> TokenAnswer:
    endpoint = TokenEndpoint(spec.client)
    if spec.client.login_flow == "device":
        return device_login(endpoint, lambda code: _show_device_code(spec, code))
    return browser_login(endpoint, lambda prompt: _show_browser_prompt(spec, prompt),
                         login_hint=spec.username, timeout=wait.total_seconds(),
                         paste_fd=_stdin_fd(), say=click.echo)


def _show_device_code(spec: GrantSpec, code: DeviceCode) -> None:
    minutes = max(1, int(code.expires_in // 60))
    click.echo(f"To let mailbot use {spec.username} ({spec.who}), open\n\n"
               f"    {code.verification_uri}\n\nin a browser and enter the code\n\n"
               f"    {code.user_code}\n\nwithin {minutes} minutes. Waiting...")


def _show_browser_prompt(spec: GrantSpec, prompt: BrowserPrompt) -> None:
    click.echo(
        f"To let mailbot use {spec.username} ({spec.who}), open this address in a browser and "
        f"sign in as {spec.username}:\n\n    {prompt.url}\n\n"
        f"After the consent the browser is sent to {prompt.redirect_uri}, where mailbot "
        "listens.\nIf the browser runs on another machine, that page fails to load: copy the "
        "address from the\nbrowser's address bar and paste it here, then press Enter (or "
        f"forward the port first:\nssh -L {prompt.port}:127.0.0.1:{prompt.port} THIS-HOST).\n"
        f"Waiting up to {format_duration(timedelta(seconds=prompt.timeout))}...")


def _stdin_fd() -> int | None:
    """The descriptor a pasted address is read from; None when there is no usable stdin."""
    try:
        return sys.stdin.fileno() if sys.stdin is not None else None
    except (OSError, ValueError):
        return None


@oauth_group.command("status")
@with_json
def oauth_status(ctx: Context) -> None:
    """Each mailbox's and SMTP's login: auth kind, token state, expiry, rotation, last error."""
    app = ctx.app()
    with app.db.session() as session:
        tokens = {t.name: t for t in session.query(OAuthToken).all()}
    rows: list[dict[str, Any]] = []
    oauth = {g.name: g for g in grants(app.settings)}
    settings = app.settings
    logins: list[tuple[str, str, str | None]] = [
        (imap_grant_name(m.name), f"mailbox {m.name}", m.imap.provider)
        for m in settings.mailboxes]
    if settings.smtp is not None and settings.smtp.transport == "smtp":
        logins.append((SMTP_GRANT, "smtp", settings.smtp.provider))
    for name, who, provider in logins:
        rows.append(_status_row(name, who, provider, name in oauth, tokens.get(name)))
    ctx.emit(rows, table(rows, STATUS_COLUMNS, max_width=60) if rows else "nothing configured")
    if any(r["auth"] == "oauth2" and r["state"] != "active" for r in rows):
        raise SystemExit(EX_FAILURE)


def _status_row(name: str, who: str, provider: str | None, is_oauth: bool,
                row: OAuthToken | None) -> dict[str, Any]:
    if not is_oauth:
        return {"grant": name, "for": who, "auth": "password", "provider": None, "state": None,
                "access_expires_at": None, "obtained_at": None, "refreshed_at": None,
                "rotated_at": None, "retry_after": None, "last_error": None}
    return {"grant": name, "for": who, "auth": "oauth2", "provider": provider,
            "state": row.state if row else "needs_login",
            "access_expires_at": iso(row.access_expires_at) if row else None,
            "obtained_at": iso(row.obtained_at) if row else None,
            "refreshed_at": iso(row.refreshed_at) if row else None,
            "rotated_at": iso(row.rotated_at) if row else None,
            "retry_after": iso(row.retry_after) if row else None,
            "last_error": row.last_error if row else None}
