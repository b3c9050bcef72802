"""Which reply parser strips quoted history best on the shared corpus (how mailbot chose).

    python -m venv /tmp/rp && /tmp/rp/bin/pip install mail-parser-reply quotequail \\
        email-reply-parser && /tmp/rp/bin/python bench/reply_parsers.py [CORPUS]

Takes every corpus file whose plain text holds quoted history ("> " lines or an
"On ... wrote:" header), runs each candidate, and counts results left empty (the new text
lost), results that still hold an "On ... wrote:" header, time per mail, and whether German,
French, Spanish and Outlook reply headers are cut. Quoted lines left inside a result are
inline answers; mailbot drops them after the parser.
"""

from __future__ import annotations

import email
import re
import sys
import time
from collections.abc import Callable
from email import policy
from email.message import EmailMessage
from pathlib import Path

import quotequail
from email_reply_parser import EmailReplyParser
from mailparser_reply import EmailReplyParser as MailParserReply

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"
QUOTE_HEADER = re.compile(r"^(on .{5,200}wrote:|-----\s*original message|from:\s.+)$",
                          re.IGNORECASE | re.MULTILINE)
QUOTED_LINE = re.compile(r"^\s*>.*$", re.MULTILINE)
WROTE = re.compile(r"^on .{5,200}wrote:\s*$", re.IGNORECASE | re.MULTILINE)
HEADERS = {
    "de": "Danke, geht wieder.\n\nAm 24.11.2026 um 10:00 schrieb Support <s@x.example>:\n"
          "> Bitte neu starten.\n",
    "fr": "Merci, ça marche.\n\nLe mar. 24 nov. 2026 à 10:00, Support <s@x.example> a écrit :\n"
          "> Redémarrez.\n",
    "es": "Gracias, funciona.\n\nEl mar, 24 nov 2026 a las 10:00, Support (<s@x.example>) "
          "escribió:\n> Reinicie.\n",
    "outlook": "Thanks, works now.\n\nFrom: Support <s@x.example>\nSent: Tuesday, November 24, "
               "2026 10:00 AM\nTo: Jane\nSubject: RE: [#1] Printer\n\nPlease restart.\n",
}
_MPR = MailParserReply(languages=["en", "de", "fr", "es", "it", "nl"])


def plain_text(path: Path) -> str | None:
    try:
        message = email.message_from_bytes(path.read_bytes(), policy=policy.default)
        assert isinstance(message, EmailMessage)
        body = message.get_body(("plain",))
        return str(body.get_content()) if isinstance(body, EmailMessage) else None
    except Exception:
        return None


def quotequail_new_text(text: str) -> str:
    return "".join(part for is_new, part in quotequail.quote(text) if is_new)


CANDIDATES: dict[str, Callable[[str], str]] = {
    "mail-parser-reply": lambda t: str(_MPR.parse_reply(text=t)),
    "quotequail": quotequail_new_text,
    "email-reply-parser": lambda t: str(EmailReplyParser.parse_reply(t)),
}


def main() -> None:
    corpus = Path(sys.argv[1]) if len(sys.argv) > 1 else CORPUS
    texts = [t for p in sorted(corpus.rglob("*")) if p.is_file()
             for t in [plain_text(p)] if t and (re.search(r"^>", t, re.MULTILINE)
                                                or QUOTE_HEADER.search(t))]
    print(f"{len(texts)} corpus mails with quoted history")
    for name, parse in CANDIDATES.items():
        started = time.perf_counter()
        outputs = [parse(t) or "" for t in texts]
        per_mail = (time.perf_counter() - started) / len(texts) * 1000
        empty = sum(not QUOTED_LINE.sub("", o).strip() for o in outputs)
        wrote = sum(bool(WROTE.search(o)) for o in outputs)
        headers = sum(len(parse(t).strip().splitlines()) == 1 for t in HEADERS.values())
        print(f"{name:20s} empty {empty:3d}  'wrote:' header left {wrote:3d}  "
              f"{per_mail:5.2f} ms/mail  reply headers cut {headers}/{len(HEADERS)}")


if __name__ == "__main__":
    main()
