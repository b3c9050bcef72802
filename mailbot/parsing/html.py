"""HTML bodies turned into readable text with inscriptis: links kept, scripts and styles gone."""

from __future__ import annotations

import re

from inscriptis import get_text
from inscriptis.css_profiles import CSS_PROFILES
from inscriptis.model.config import ParserConfig

_CONFIG = ParserConfig(css=CSS_PROFILES["strict"], display_links=True)
_BLANK_RUNS = re.compile(r"\n[ \t]*(\n[ \t]*){2,}")
_DOCUMENT_END = re.compile(r"</(?:body|html)\s*>", re.IGNORECASE)


def html_to_text(html: str) -> str:
    """Readable plain text of an HTML document; '' for an empty or unparseable one."""
    if not html.strip():
        return ""
    html = _DOCUMENT_END.sub("", html)  # text after </html> (mail appended by a forward)
    try:
        text = get_text(html, _CONFIG)
    except Exception:
        text = re.sub(r"<[^>]+>", " ", html)
    lines = [line.rstrip() for line in text.splitlines()]
    return _BLANK_RUNS.sub("\n\n", "\n".join(lines)).strip()
