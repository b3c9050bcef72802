"""Fidelity on real mail: every file of a corpus through parse → identify → classify → loops.

    .venv/bin/python bench/corpus.py ../shared/corpus [--show-misses] [--json]

Per source folder: files ingested, quarantined (with reasons), crashed (an exception out of
the pipeline: must be 0), content lost (a body in the raw mail, none in the result) and
mojibake (signs of a wrong charset in subject, sender name, body or file names).
For the automatic-mail sets (`bounces/`, `autoreplies/`, `discourse/auto_*`,
`sisimai-not-bounces/rb-issue-368-bug.eml`), how many would still get an auto-reply (must be
0) and how many bounces are recognised as bounces. Where Zammad's expected results sit beside
a mail (`mailNNN.expected.json`), how many of its from, subject, body and attachment
expectations are met, as Zammad wrote them and with the few it got wrong corrected
(`bench/zammad_corrections.yaml` gives each correct value and how to see it in the raw mail).
No network, no database: the pure pipeline only.
"""

from __future__ import annotations

import argparse
import difflib
import hashlib
import html
import json
import re
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from mailbot.config import DEFAULT_CUSTOMER_ID_PATTERNS
from mailbot.identify import CustomerDirectory, compile_patterns
from mailbot.parsing import ParsedMessage
from mailbot.pipeline import Analysis, DefaultSeverity, IngestPolicy, analyze
from mailbot.replies.loops import Sender, is_bounce, no_reply_reason
from mailbot.replies.returned import returned_message_ids

NOT_MAIL = {".yml", ".yaml", ".json", ".md"}
WHO = Sender(own_addresses=("support@example.com",), agent_domains=("example.com",))
BODY_MATCH_RATIO = 0.95  # share of words in common for "the same body, loosely"
ZAMMAD_EMPTY_BODY = "no visible content"  # Zammad's placeholder for a mail without text
CORRECTIONS = Path(__file__).with_name("zammad_corrections.yaml")
# Signs of text decoded with the wrong charset: UTF-8 read as Windows-1252 ("Ã©", "â€™"),
# Cyrillic UTF-8 read so ("Ð¿Ð"), and replacement characters.
MOJIBAKE = re.compile("[ÃÂ][\u00a0-\u00bf\u0152\u0153\u0160\u0161\u0178\u017d\u017e\u0192"
                      "\u02c6\u02dc\u2013-\u2122]|â€|\ufffd|Ð[\u00a0-\u00bf]Ð|Ñ[\u0080-\u00bf]")
# Files whose mojibake is in the mail itself, not made by decoding it.
MOJIBAKE_IN_SOURCE = {
    "flanker/outlook-express.eml": "the file name holds U+FFFD bytes (EF BF BD) as sent",
    "rt/emails/new-ticket-from-iso-8859-1-full": "the text quotes mojibake it complains of",
    "ruby-mail/error_emails/content_transfer_encoding_empty.eml":
        "a Big5 subject encoded to UTF-8 a second time, as if it were Latin-1",
    "zammad/mail021.box": "spam whose HTML holds binary noise",
}


@dataclass
class SourceReport:
    files: int = 0
    ingested: int = 0
    quarantined: list[tuple[str, str]] = field(default_factory=list)
    crashed: list[tuple[str, str]] = field(default_factory=list)
    lost_content: list[str] = field(default_factory=list)
    automatic: int = 0
    replied_to_automatic: list[str] = field(default_factory=list)
    bounces: int = 0
    bounces_recognised: int = 0
    bounces_identified: int = 0  # the returned mail's Message-ID read from the bounce
    mojibake: list[tuple[str, str]] = field(default_factory=list)  # file, where
    seconds: float = 0.0


@dataclass
class ExpectationReport:
    checked: Counter[str] = field(default_factory=Counter)
    met: Counter[str] = field(default_factory=Counter)
    misses: list[tuple[str, str, str]] = field(default_factory=list)  # file, field, detail
    corrected: int = 0  # expectations replaced by bench/zammad_corrections.yaml
    met_corrected: int = 0  # expectations met, those corrected judged by their correction


def mail_files(root: Path) -> Iterator[Path]:
    for path in sorted(root.rglob("*")):
        if path.is_file() and path.suffix not in NOT_MAIL and "LICENSES" not in path.parts \
                and not path.name.startswith("_expected") and path.name != "README.md":
            yield path


def source_of(root: Path, path: Path) -> str:
    return path.relative_to(root).parts[0]


def is_automatic(relative: Path) -> bool:
    """Mail a machine wrote: none of it may get an auto-reply."""
    top = relative.parts[0]
    return top in {"bounces", "autoreplies"} or \
        (top == "discourse" and relative.name.startswith("auto_")) or \
        (top == "sisimai-not-bounces" and relative.name == "rb-issue-368-bug.eml")


def is_bounce_sample(relative: Path) -> bool:
    """A delivery report in the bounce set (its vacation, RFC 3834 auto-reply and feedback
    samples are not)."""
    name = relative.name.lower()
    return relative.parts[0] == "bounces" and not any(
        word in name for word in ("vacation", "autoreply", "auto-reply", "arf", "feedback",
                                  "complaint", "not-bounce", "rfc3834"))


def raw_body_words(raw: bytes) -> int:
    """Words after the header block of the raw bytes (0: nothing there to lose)."""
    text = raw.replace(b"\r\n", b"\n")
    _, sep, body = text.partition(b"\n\n")
    if not sep:
        return 0
    lines = [line for line in body.split(b"\n")  # MIME boundaries and part headers aside
             if not line.startswith(b"--") and not re.match(rb"^[\w-]+:\s", line)]
    return len(re.findall(rb"[A-Za-z]{3,}", b"\n".join(lines)))


def mojibake_in(message: ParsedMessage) -> str:
    """Where the decoded message shows signs of a wrong charset ('' when nowhere)."""
    fields = {"subject": message.subject,
              "from name": message.from_.name if message.from_ else "",
              "body": message.body_text,
              "file names": " ".join(a.filename for a in message.attachments)}
    for where, text in fields.items():
        hit = MOJIBAKE.search(text)
        if hit:
            return f"{where}: {text[max(0, hit.start() - 20):hit.end() + 20]!r}"
    return ""


def has_content(message: ParsedMessage) -> bool:
    return bool(message.body_text.strip() or message.body_html or message.attachments)


_URL = re.compile(r"(?:https?://|mailto:|www\.)[^\s<>)\]]+", re.IGNORECASE)


def words(text: str) -> list[str]:
    """Words to compare bodies by; link targets left out (ours shows them, Zammad's not)."""
    return re.findall(r"\w+", _URL.sub(" ", text).casefold())


_INLINE_TAGS = re.compile(r"(?is)</?(?:span|a|b|i|u|em|strong|font|sub|sup|small|big)\b[^>]*>")


def strip_html(text: str) -> str:
    """Zammad's HTML body as a reader sees it: inline tags join, block tags separate."""
    text = re.sub(r"(?is)<(script|style)\b.*?</\1>", " ", text)
    text = _INLINE_TAGS.sub("", text)
    return html.unescape(re.sub(r"(?s)<[^>]+>", " ", text))


def body_similarity(expected: str, ours: str) -> float:
    a, b = words(expected), words(ours)
    if not a and not b:
        return 1.0
    return difflib.SequenceMatcher(None, a, b, autojunk=False).ratio()


def load_corrections() -> dict[str, dict[str, str]]:
    """file name → field → the value the mail really carries (see zammad_corrections.yaml)."""
    data = yaml.safe_load(CORRECTIONS.read_text(encoding="utf-8")) or {}
    return {file: {what: str(entry["value"]) for what, entry in fields.items()}
            for file, fields in data.items()}


def compare_with_zammad(message: ParsedMessage, expected: dict[str, Any], name: str,
                        report: ExpectationReport,
                        corrections: dict[str, str] | None = None) -> None:
    corrections = corrections or {}

    def check(what: str, ok: bool, detail: str) -> None:
        report.checked[what] += 1
        corrected = matches(what, corrections[what]) if what in corrections else None
        report.corrected += corrected is not None
        report.met_corrected += ok if corrected is None else corrected
        if ok:
            report.met[what] += 1
        else:
            note = "" if corrected is None else \
                f" (Zammad is wrong here; the corrected value is {'' if corrected else 'NOT '}met)"
            report.misses.append((name, what, detail + note))

    def matches(what: str, value: str) -> bool:
        if what == "from name":
            return (message.from_.name if message.from_ else "") == value
        if what == "subject":
            return message.subject == value.strip()
        if what == "body":
            return body_similarity(value, message.body_text) >= BODY_MATCH_RATIO
        raise ValueError(f"no correction of {what!r} is understood")

    ours_from = message.from_.email if message.from_ else ""
    if "from_email" in expected:
        check("from", ours_from.lower() == str(expected["from_email"]).lower(),
              f"expected {expected['from_email']!r}, got {ours_from!r}")
    if "from_display_name" in expected:
        ours_name = message.from_.name if message.from_ else ""
        check("from name", ours_name == expected["from_display_name"],
              f"expected {expected['from_display_name']!r}, got {ours_name!r}")
    if "subject" in expected:  # exactly, but for whitespace at either end
        check("subject", message.subject == str(expected["subject"]).strip(),
              f"expected {expected['subject']!r}, got {message.subject!r}")
    if "body" in expected:
        wanted = str(expected["body"])
        if wanted.strip() == ZAMMAD_EMPTY_BODY:
            wanted = ""
        if expected.get("content_type") == "text/html":
            wanted = strip_html(wanted)
        ratio = body_similarity(wanted, message.body_text)
        check("body", ratio >= BODY_MATCH_RATIO,
              f"{ratio:.0%} of words in common; expected {wanted.strip()[:80]!r}, "
              f"got {message.body_text.strip()[:80]!r}")
    if "attachments" in expected:
        # Zammad files the HTML body as an attachment of its own ("content-alternative"), and
        # keeps text attachments with LF line ends: either form of ours counts.
        wanted_md5 = sorted(
            a["md5"] for a in expected["attachments"]
            if not (a.get("preferences") or {}).get("content-alternative"))
        ours = [{hashlib.md5(a.data).hexdigest(),
                 hashlib.md5(a.data.replace(b"\r\n", b"\n")).hexdigest()}
                for a in message.attachments]
        check("attachments", len(ours) == len(wanted_md5) and all(
            any(md5 in forms for forms in ours) for md5 in wanted_md5),
              f"expected {sorted(a.get('filename', '?') for a in expected['attachments'])}, "
              f"got {sorted(a.filename for a in message.attachments)}")


def run(root: Path) -> tuple[dict[str, SourceReport], ExpectationReport]:
    policy = IngestPolicy(50_000_000, compile_patterns(DEFAULT_CUSTOMER_ID_PATTERNS))
    directory, classifier = CustomerDirectory(), DefaultSeverity("P3")
    sources: dict[str, SourceReport] = defaultdict(SourceReport)
    expectations = ExpectationReport()
    corrections = load_corrections()
    for path in mail_files(root):
        relative = path.relative_to(root)
        report = sources[relative.parts[0]]
        report.files += 1
        raw = path.read_bytes()
        started = time.perf_counter()
        try:
            decision = analyze(raw, policy, directory, classifier)
            reason = no_reply_reason(decision.message, WHO) \
                if isinstance(decision, Analysis) else None
            bounce = is_bounce(decision.message) if isinstance(decision, Analysis) else False
        except Exception as exc:  # the count the harness exists for
            report.crashed.append((str(relative), f"{type(exc).__name__}: {exc}"))
            continue
        finally:
            report.seconds += time.perf_counter() - started
        if not isinstance(decision, Analysis):
            report.quarantined.append((str(relative), decision.reason))
            continue
        report.ingested += 1
        message = decision.message
        if not has_content(message) and raw_body_words(raw) >= 5:
            report.lost_content.append(str(relative))
        garbled = mojibake_in(message)
        if garbled and str(relative) not in MOJIBAKE_IN_SOURCE:
            report.mojibake.append((str(relative), garbled))
        if is_automatic(relative):
            report.automatic += 1
            if reason is None:
                report.replied_to_automatic.append(str(relative))
        if is_bounce_sample(relative):
            report.bounces += 1
            report.bounces_recognised += bounce
            report.bounces_identified += bool(returned_message_ids(message, raw))
        expected_file = path.with_suffix(".expected.json")
        if expected_file.exists():
            compare_with_zammad(message, json.loads(expected_file.read_text()),
                                str(relative), expectations, corrections.get(path.name))
    return dict(sources), expectations


def summary(sources: dict[str, SourceReport], expectations: ExpectationReport) -> dict[str, Any]:
    total = SourceReport()
    for report in sources.values():  # every field is a count, a duration or a list
        for counted in fields(SourceReport):
            setattr(total, counted.name,
                    getattr(total, counted.name) + getattr(report, counted.name))
    checked, met = sum(expectations.checked.values()), sum(expectations.met.values())
    return {
        "files": total.files, "ingested": total.ingested,
        "quarantined": len(total.quarantined), "crashed": len(total.crashed),
        "lost_content": len(total.lost_content),
        "mojibake": len(total.mojibake),
        "mojibake_in_source": len(MOJIBAKE_IN_SOURCE),
        "automatic": total.automatic,
        "auto_replies_to_automatic_mail": len(total.replied_to_automatic),
        "bounces": total.bounces, "bounces_recognised": total.bounces_recognised,
        "bounces_identified": total.bounces_identified,
        "zammad_expectations": checked, "zammad_met": met,
        "zammad_rate": round(met / checked, 4) if checked else None,
        "zammad_by_field": {k: [expectations.met[k], v]
                            for k, v in sorted(expectations.checked.items())},
        "zammad_corrected": expectations.corrected,
        "zammad_met_with_corrections": expectations.met_corrected,
        "zammad_rate_with_corrections": round(expectations.met_corrected / checked, 4)
        if checked else None,
        "seconds": round(total.seconds, 2),
    }


def print_report(sources: dict[str, SourceReport], expectations: ExpectationReport,
                 show_misses: bool) -> None:
    print(f"{'source':22} {'files':>6} {'ingested':>8} {'quarant.':>8} {'crashed':>7} "
          f"{'lost':>5} {'auto':>5} {'replied':>7} {'bounces':>9} {'ms/mail':>8}")
    for name, r in sorted(sources.items()):
        bounces = f"{r.bounces_recognised}/{r.bounces}" if r.bounces else "-"
        print(f"{name:22} {r.files:>6} {r.ingested:>8} {len(r.quarantined):>8} "
              f"{len(r.crashed):>7} {len(r.lost_content):>5} {r.automatic or '-':>5} "
              f"{len(r.replied_to_automatic) if r.automatic else '-':>7} {bounces:>9} "
              f"{1000 * r.seconds / max(r.files, 1):>8.1f}")
    totals = summary(sources, expectations)
    print(f"\n{totals['files']} files: {totals['ingested']} ingested, "
          f"{totals['quarantined']} quarantined, {totals['crashed']} crashed, "
          f"{totals['lost_content']} with content lost, {totals['mojibake']} with mojibake "
          f"(besides {totals['mojibake_in_source']} whose mojibake is in the mail itself)")
    print(f"automatic mail: {totals['automatic']} files, "
          f"{totals['auto_replies_to_automatic_mail']} would get an auto-reply")
    if totals["bounces"]:
        print(f"bounces recognised: {totals['bounces_recognised']} of {totals['bounces']} "
              f"({totals['bounces_recognised'] / totals['bounces']:.1%}); the returned mail's "
              f"Message-ID read in {totals['bounces_identified']} "
              f"({totals['bounces_identified'] / totals['bounces']:.1%}): a bounce of ours "
              f"goes to its ticket")
    if totals["zammad_expectations"]:
        fields = ", ".join(f"{k} {m}/{n}" for k, (m, n) in totals["zammad_by_field"].items())
        print(f"Zammad expectations met: {totals['zammad_met']} of "
              f"{totals['zammad_expectations']} ({totals['zammad_rate']:.1%}) as written: "
              f"{fields}")
        print(f"  with {totals['zammad_corrected']} of Zammad's own decoding errors corrected "
              f"({CORRECTIONS.name}): {totals['zammad_met_with_corrections']} of "
              f"{totals['zammad_expectations']} ({totals['zammad_rate_with_corrections']:.1%})")
    for _name, r in sorted(sources.items()):
        for file, reason in r.crashed:
            print(f"CRASHED {file}: {reason}")
        for file, reason in r.quarantined:
            print(f"quarantined {file}: {reason}")
        for file in r.replied_to_automatic:
            print(f"WOULD AUTO-REPLY to {file}")
        for file in r.lost_content:
            print(f"content lost: {file}")
        for file, where in r.mojibake:
            print(f"mojibake {file}: {where}")
    if show_misses:
        for file, what, detail in expectations.misses:
            print(f"miss {file} [{what}]: {detail}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--show-misses", action="store_true",
                        help="list every unmet Zammad expectation")
    parser.add_argument("--json", action="store_true", help="print the totals as JSON")
    args = parser.parse_args()
    if not args.folder.is_dir():
        parser.error(f"not a folder: {args.folder}")
    sources, expectations = run(args.folder)
    if args.json:
        print(json.dumps(summary(sources, expectations), indent=2))
    else:
        print_report(sources, expectations, args.show_misses)
    totals = summary(sources, expectations)
    bad = totals["crashed"] or totals["auto_replies_to_automatic_mail"]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
