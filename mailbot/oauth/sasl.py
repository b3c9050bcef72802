"""SASL XOAUTH2 and OAUTHBEARER (RFC 7628) client strings, and which of them to use."""

from __future__ import annotations

from collections.abc import Iterable


def xoauth2(user: str, access_token: str) -> str:
    """Google's and Microsoft's XOAUTH2 initial response (before base64)."""
    return f"user={user}\x01auth=Bearer {access_token}\x01\x01"


def oauthbearer(user: str, access_token: str, host: str | None = None,
                port: int | None = None) -> str:
    """The OAUTHBEARER initial response: a GS2 header naming the user, then key=value pairs."""
    authzid = user.replace("=", "=3D").replace(",", "=2C")
    pairs = ([f"host={host}"] if host else []) + ([f"port={port}"] if port else [])
    pairs.append(f"auth=Bearer {access_token}")
    return f"n,a={authzid},\x01" + "".join(f"{p}\x01" for p in pairs) + "\x01"


def choose_mechanism(offered: Iterable[str]) -> str:
    """OAUTHBEARER when the server offers it (the standard), else XOAUTH2."""
    names = {name.upper() for name in offered}
    return "OAUTHBEARER" if "OAUTHBEARER" in names else "XOAUTH2"
