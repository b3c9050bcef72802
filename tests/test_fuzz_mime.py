"""Hostile MIME, generated: the pipeline ingests or quarantines, never raises past analyze,
never takes long on one message, and names attachments safely."""

from __future__ import annotations

import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailbot.config import DEFAULT_CUSTOMER_ID_PATTERNS
from mailbot.identify import CustomerDirectory, compile_patterns
from mailbot.pipeline import Analysis, DefaultSeverity, IngestPolicy, Rejection, analyze
from mailbot.replies.loops import Sender, no_reply_reason

POLICY = IngestPolicy(1_000_000, compile_patterns(DEFAULT_CUSTOMER_ID_PATTERNS))
SECONDS_PER_MESSAGE = 2.0

header_names = st.sampled_from([
    "From", "To", "Cc", "Reply-To", "Subject", "Message-ID", "In-Reply-To", "References",
    "Date", "Content-Type", "Content-Transfer-Encoding", "Content-Disposition",
    "Auto-Submitted", "Return-Path", "X-Junk", "MIME-Version"])
nasty_values = st.one_of(
    st.text(max_size=120),
    st.sampled_from([
        "=?utf-8?b?4pyT?=", "=?x-unknown?q?=FF=FE?=", "=?iso-2022-jp?B?GyRCJUYlOSVIGyhC?=",
        "multipart/mixed; boundary=", 'multipart/mixed; boundary="b"',
        "multipart/alternative; boundary=b", "message/rfc822", "text/html; charset=utf-7",
        "text/plain; charset=koi8-r", "base64", "quoted-printable", "x-uuencode",
        'attachment; filename*=utf-8\'\'%E2%9C%93%2F..%2F..%2Fetc%2Fpasswd',
        "attachment; filename=\"CON\"", "<>", "<a@b>", "\udcff", "Mon, 99 Foo 20x"]))
raw_header = st.tuples(header_names, nasty_values).map(
    lambda pair: f"{pair[0]}: {pair[1]}".encode("utf-8", "surrogateescape"))


@st.composite
def parts(draw: st.DrawFn, depth: int = 0) -> bytes:
    headers = draw(st.lists(raw_header, max_size=4))
    if depth < 3 and draw(st.booleans()):
        boundary = draw(st.sampled_from([b"b", b"b2", b"", b"--", b"b b"]))
        children = draw(st.lists(parts(depth + 1), max_size=3))
        body = b"".join(b"--" + boundary + b"\r\n" + child + b"\r\n" for child in children)
        if draw(st.booleans()):
            body += b"--" + boundary + b"--\r\n"
        headers.append(b'Content-Type: multipart/mixed; boundary="' + boundary + b'"')
    else:
        body = draw(st.binary(max_size=300))
    separator = draw(st.sampled_from([b"\r\n\r\n", b"\n\n", b"\r\n", b"\r\r"]))
    return b"\r\n".join(headers) + separator + body


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=st.one_of(parts(), st.binary(max_size=500)))
def test_any_bytes_are_ingested_or_quarantined_quickly(raw: bytes) -> None:
    started = time.perf_counter()
    decision = analyze(raw, POLICY, CustomerDirectory(), DefaultSeverity("P3"))
    assert isinstance(decision, Analysis | Rejection)
    if isinstance(decision, Rejection):
        assert decision.reason
    else:
        no_reply_reason(decision.message, Sender())
        for attachment in decision.message.attachments:
            name = attachment.filename
            assert name and "/" not in name and "\\" not in name and len(name) <= 150
            assert not any(ord(c) < 32 for c in name)
        names = [a.filename.lower() for a in decision.message.attachments]
        assert len(names) == len(set(names))
    assert time.perf_counter() - started < SECONDS_PER_MESSAGE
