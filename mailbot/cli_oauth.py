"""`mailbot oauth login` (device-code flow, stores the grant) and `mailbot oauth status`."""

from __future__ import annotations

from typing import Any

import click

from mailbot.cli_support import EX_FAILURE, Context, fail, with_json
from mailbot.oauth.device import device_login
from mailbot.oauth.endpoint import DeviceCode, TokenEndpoint
from mailbot.oauth.errors import OAuthUnavailable
from mailbot.oauth.grants import SMTP_GRANT, grants, imap_grant_name
from mailbot.oauth.tokens import store_login
from mailbot.store.models import OAuthToken
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
@click.pass_obj
def oauth_login(ctx: Context, mailbox: str | None, for_smtp: bool) -> None:
    """Log MAILBOX (or --smtp) in with the device-code flow and store its refresh token."""
    if bool(mailbox) == for_smtp:
        fail("name one MAILBOX, or --smtp")
    app = ctx.app()
    wanted = SMTP_GRANT if for_smtp else imap_grant_name(mailbox or "")
    spec = next((g for g in grants(app.settings) if g.name == wanted), None)
    if spec is None:
        configured = ", ".join(g.mailbox or "--smtp" for g in grants(app.settings)) or "none"
        fail(f"{'smtp' if for_smtp else f'mailbox {mailbox}'} has no auth: oauth2 "
             f"(configured for OAuth2: {configured})")

    def show(code: DeviceCode) -> None:
        minutes = max(1, int(code.expires_in // 60))
        click.echo(f"To let mailbot use {spec.username} ({spec.who}), open\n\n"
                   f"    {code.verification_uri}\n\nin a browser and enter the code\n\n"
                   f"    {code.user_code}\n\nwithin {minutes} minutes. Waiting...")

    try:
        answer = device_login(TokenEndpoint(spec.client), show)
        row = store_login(app.db, spec.name, spec.client.provider, answer, app.clock.now())
    except OAuthUnavailable as exc:
        fail(f"login for {spec.who} failed: {exc}")
    until = row.access_expires_at.isoformat(timespec="seconds") if row.access_expires_at \
        else "unknown"
    click.echo(f"stored the grant for {spec.who}; access token valid until {until}. "
               "mailbot refreshes it from now on.")


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
