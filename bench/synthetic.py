"""Synthetic but realistic support mail for benchmarks: plain and alternative, some files."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime

WORDS = (
    "checkout", "export", "invoice", "login", "report", "server", "timeout", "error",
    "customer", "store", "payment", "screen", "sync", "update", "database", "slow", "crash",
    "page", "order", "stock", "user", "access", "account", "backup", "printer", "network",
    "please", "urgent", "since", "yesterday", "again", "working", "partially", "totals",
    "wrong", "cannot", "open", "shows", "blank", "after", "the", "with", "for", "our",
)
SUBJECTS = ("Checkout fails for {n} stores", "Export totals wrong since update",
            "Cannot log in at all", "Question about invoices", "Slow search on page {n}",
            "Printer not printing receipts", "How do I add a user?", "Sync error {n}")


def _paragraphs(rng: random.Random, size: int) -> str:
    out: list[str] = []
    while sum(len(p) for p in out) < size:
        out.append(" ".join(rng.choice(WORDS) for _ in range(rng.randint(20, 60))).capitalize()
                   + ".")
    return "\n\n".join(out)


SYLLABLES = ("ka", "vo", "ri", "lu", "ne", "to", "sa", "mi", "po", "de", "zu", "ga")


def domain_terms(count: int = 2000, seed: int = 3) -> list[str]:
    """Product, module and error names of the kind support rules look for (`kavori-117`)."""
    rng = random.Random(seed)
    terms: list[str] = []
    while len(terms) < count:
        term = "".join(rng.choice(SYLLABLES) for _ in range(3)) + f"-{rng.randint(10, 999)}"
        if term not in terms:
            terms.append(term)
    return terms


def support_mails(count: int, seed: int = 7, attachment_share: float = 0.05,
                  terms: list[str] | None = None,
                  reply_id: Callable[[int], str] | None = None,
                  reply_share: float = 0.15) -> Iterator[bytes]:
    """`count` mails, 2-20 KB of text, a third multipart/alternative, 5 % with 200 KB files.

    With `terms`, each mail names three of them (product, module, error code). With
    `reply_id` (ticket number -> the Message-ID of that ticket's auto-reply), a share of the
    mails are customers' answers to an earlier ticket's auto-reply, threaded on that id and
    quoting it; tickets are numbered in the order their first mail comes.
    """
    rng = random.Random(seed)
    start = datetime(2026, 11, 23, 3, 0, tzinfo=UTC)
    tickets: list[tuple[int, str]] = []
    for n in range(count):
        date = format_datetime(start + timedelta(seconds=37 * n))
        if reply_id is not None and tickets and rng.random() < reply_share:
            number = rng.randint(1, len(tickets))
            yield _answer(rng, seed, n, number, *tickets[number - 1], date,
                          reply_id(number))
            continue
        msg = EmailMessage()
        customer = rng.randint(1, 400)
        msg["From"] = f"Customer {customer} <user{customer}@customer{customer % 97}.example>"
        msg["To"] = "support@example.test"
        subject = rng.choice(SUBJECTS).format(n=rng.randint(2, 40))
        tickets.append((customer, subject))
        if reply_id is None and n > 10 and rng.random() < 0.2:
            subject = "Re: " + subject
            msg["In-Reply-To"] = f"<bench-{seed}-{rng.randint(0, n - 1)}@customer.example>"
        msg["Subject"] = subject
        msg["Date"] = date
        msg["Message-ID"] = f"<bench-{seed}-{n}@customer{customer % 97}.example>"
        msg["X-Mailer"] = f"client-{rng.randint(0, 3000)}"
        named = ", ".join(rng.sample(terms, 3)) if terms else ""
        body = (f"Hello support,\n\n{_paragraphs(rng, rng.randint(2_000, 20_000))}\n\n"
                + (f"Affected: {named}\n\n" if named else "") +
                f"Customer ID: RC-{10000 + customer}\n\nRegards,\nCustomer {customer}\n")
        msg.set_content(body)
        if rng.random() < 0.33:
            html = "".join(f"<p>{p}</p>" for p in body.split("\n\n"))
            msg.add_alternative(f"<html><body>{html}</body></html>", subtype="html")
        if rng.random() < attachment_share:
            msg.add_attachment(rng.randbytes(200_000), maintype="application",
                               subtype="octet-stream", filename=f"logs-{n}.bin")
        yield msg.as_bytes()


def _answer(rng: random.Random, seed: int, n: int, number: int, customer: int, subject: str,
            date: str, in_reply_to: str) -> bytes:
    """A customer's answer to ticket `number`'s auto-reply, quoting it below the new text."""
    msg = EmailMessage()
    msg["From"] = f"Customer {customer} <user{customer}@customer{customer % 97}.example>"
    msg["To"] = "support@example.test"
    msg["Subject"] = f"Re: [#{number}] {subject}"
    msg["Date"] = date
    msg["Message-ID"] = f"<bench-{seed}-{n}@customer{customer % 97}.example>"
    msg["In-Reply-To"] = f"<{in_reply_to}>"
    msg["References"] = f"<{in_reply_to}>"
    quoted = "\n".join("> " + line for line in (
        f"We have received your request and opened ticket #{number}.",
        "Severity: P3 (Minor). Expected first response: within 3 working days.", "",
        "Example Support"))
    msg.set_content(f"Hello,\n\n{_paragraphs(rng, rng.randint(200, 2_000))}\n\n"
                    f"Regards,\nCustomer {customer}\n\n"
                    f"On {date}, Example Support wrote:\n{quoted}\n")
    return msg.as_bytes()
