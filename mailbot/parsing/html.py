"""HTML bodies turned into readable text with inscriptis: links kept, scripts and styles gone.

Newsletters lay their text out with nested tables, which a faithful rendering turns into
lines hundreds of columns wide; those are pulled back to the left and their wide gaps closed.
Data tables narrow enough to read keep their alignment. Links without text (an image that
links somewhere) are dropped; the HTML itself is kept beside the text.
"""

from __future__ import annotations

import re

from inscriptis import get_text
from inscriptis.css_profiles import CSS_PROFILES
from inscriptis.model.config import ParserConfig

_CONFIG = ParserConfig(css=CSS_PROFILES["strict"], display_links=True)
_BLANK_RUNS = re.compile(r"\n[ \t]*(\n[ \t]*){2,}")
_DOCUMENT_END = re.compile(r"</(?:body|html)\s*>", re.IGNORECASE)
_EMPTY_LINK = re.compile(r"\[\s*\]\([^()\s]*\)")
_WIDE_GAP = re.compile(r"(?<=\S)[ \t]{8,}(?=\S)")
MAX_INDENT = 8  # columns of indentation kept; deeper lines are layout, not structure
MAX_ALIGNED_WIDTH = 100  # wider lines are layout tables: their gaps are closed


def html_to_text(html: str) -> str:
    """Readable plain text of an HTML document; '' for an empty or unparseable one."""
    if not html.strip():
        return ""
    html = _DOCUMENT_END.sub("", html)  # text after </html> (mail appended by a forward)
    try:
        text = get_text(html, _CONFIG)
    except Exception:
        text = re.sub(r"<[^>]+>", " ", html)
    for _ in range(3):  # an image link inside another one leaves an empty link behind
        text, removed = _EMPTY_LINK.subn("", text)
        if not removed:
            break
    lines = [_readable_line(line) for line in text.splitlines()]
    return _BLANK_RUNS.sub("\n\n", "\n".join(lines)).strip()


def _readable_line(line: str) -> str:
    line = line.rstrip()
    content = line.lstrip()
    indent = len(line) - len(content)
    if indent > MAX_INDENT:
        line = "    " + content
    if len(line) > MAX_ALIGNED_WIDTH:
        line = _WIDE_GAP.sub("   ", line)
    return line
