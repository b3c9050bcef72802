"""Peak memory of `mailbot poll` draining a mailbox: flat in the backlog, bounded per message.

    .venv/bin/python bench/memory.py [--counts 10000 100000] [--attachment-mb 25]

For each count, a throwaway Dovecot gets that many synthetic support mails (written straight
into its Maildir, which Dovecot indexes on first access) and `mailbot poll` drains it with
the shipped configuration, auto-replies delivered to an SMTP server on loopback. The peak
resident set of mailbot is printed per count: of the whole process tree (the main process
and its analysis workers, summed, sampled every 20 ms from /proc) and of the main process
alone (ru_maxrss from wait4); then the growth between the smallest and largest count.

Then one mail of a few lines and one with an attachment of --attachment-mb are drained in
turn; the difference of their peaks, divided by the size of the large mail, is what a
message costs in memory per byte (goal: at most 4).
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable
from contextlib import ExitStack
from email.message import EmailMessage
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ingest import SECRET, mailbot_config
from synthetic import support_mails

from mailbot.conversation.ids import ThreadSigner
from mailbot.testing import DovecotServer, SmtpCapture
from mailbot.testing.dovecot import MAIL_UID


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--attachment-mb", type=int, default=25)
    args = parser.parse_args()
    signer = ThreadSigner(SECRET.encode())
    peaks: dict[int, int] = {}
    for count in args.counts:
        mails = support_mails(count, reply_id=lambda n: signer.new_id(n, "auto_reply",
                                                                        "example.test"))
        seconds, main_peak, peaks[count] = drain(mails)
        print(f"{count:>7} mails: drained in {seconds:.0f} s, peak RSS "
              f"{peaks[count] / 2**20:.0f} MB with the analysis workers "
              f"(main process {main_peak / 2**20:.0f} MB)", flush=True)
    if len(peaks) > 1:
        low, high = peaks[min(peaks)], peaks[max(peaks)]
        print(f"peak RSS grew {100 * (high - low) / low:+.1f} % from {min(peaks)} to "
              f"{max(peaks)} mails (goal: within 10 %)")
    _, _, baseline = drain([small_mail()])
    big = large_mail(args.attachment_mb * 2**20)
    _, _, peak = drain([big])
    print(f"one mail of {len(big) / 2**20:.1f} MB ({args.attachment_mb} MB attachment): peak "
          f"RSS {peak / 2**20:.0f} MB against {baseline / 2**20:.0f} MB for a small mail, "
          f"{(peak - baseline) / len(big):.2f}x the mail's size (goal: at most 4x)")


def drain(mails: Iterable[bytes]) -> tuple[float, int, int]:
    """Seconds, the main process's and the process tree's peak RSS (bytes) draining mails."""
    with ExitStack() as stack:
        dovecot = stack.enter_context(DovecotServer())
        deliver(dovecot, mails)
        smtp = stack.enter_context(SmtpCapture())
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="mbmem-")))
        config = work / "config.yaml"
        config.write_text(yaml.safe_dump(mailbot_config(
            dovecot, smtp, work, f"sqlite:///{work / 'mailbot.db'}", notify_agents=False)))
        mailbot = [sys.executable, "-m", "mailbot", "--config", str(config)]
        subprocess.run([*mailbot, "db", "upgrade"], check=True, capture_output=True,
                       timeout=300)
        started = time.perf_counter()
        with open(work / "poll.log", "wb") as log:
            process = subprocess.Popen([*mailbot, "poll"], stdout=log, stderr=log)
            sampler = TreeSampler(process.pid)
            sampler.start()
            _, status, usage = os.wait4(process.pid, 0)
            sampler.done.set()
            sampler.join()
            process.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - started
        if process.returncode != 0:
            sys.exit(f"mailbot poll failed:\n{(work / 'poll.log').read_text()[-3000:]}")
        assert dovecot.count("INBOX") == 0, "mailbox not drained"
        main_peak = usage.ru_maxrss * 1024
        return seconds, main_peak, max(main_peak, sampler.peak)


class TreeSampler(threading.Thread):
    """The largest sum of resident sets of a process and its descendants, sampled."""

    def __init__(self, pid: int, every: float = 0.02) -> None:
        super().__init__(daemon=True)
        self.pid, self.every, self.peak = pid, every, 0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(self.every):
            self.peak = max(self.peak, sum(_rss(pid) for pid in _tree(self.pid)))


def _tree(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        for task in Path(f"/proc/{current}/task").glob("*/children"):
            try:
                todo += [int(child) for child in task.read_text().split()]
            except OSError:
                continue
    return found


def _rss(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def deliver(dovecot: DovecotServer, mails: Iterable[bytes]) -> None:
    """Write mails into the INBOX's Maildir as a delivery agent would."""
    maildir = dovecot.root / "home" / "Maildir"
    for sub in ("cur", "new", "tmp"):
        (maildir / sub).mkdir(parents=True, exist_ok=True)
    for path in (maildir, *(maildir / sub for sub in ("cur", "new", "tmp"))):
        os.chown(path, MAIL_UID, MAIL_UID)
    for n, raw in enumerate(mails):
        target = maildir / "new" / f"{1_700_000_000 + n}.M{n}P1.bench"
        target.write_bytes(raw.replace(b"\r\n", b"\n"))
        os.chown(target, MAIL_UID, MAIL_UID)


def small_mail() -> bytes:
    msg = EmailMessage()
    msg["From"] = "Jane <jane@customer.example>"
    msg["To"] = "support@example.test"
    msg["Subject"] = "Printer offline"
    msg["Message-ID"] = "<small@customer.example>"
    msg.set_content("The printer is offline.\n\nCustomer ID: RC-10442\n")
    return msg.as_bytes()


def large_mail(size: int) -> bytes:
    msg = EmailMessage()
    msg["From"] = "Jane <jane@customer.example>"
    msg["To"] = "support@example.test"
    msg["Subject"] = "Database dump for the export problem"
    msg["Message-ID"] = "<large@customer.example>"
    msg.set_content("The dump is attached.\n\nCustomer ID: RC-10442\n")
    msg.add_attachment(random.Random(5).randbytes(size), maintype="application",
                       subtype="octet-stream", filename="dump.bin")
    return msg.as_bytes()


if __name__ == "__main__":
    main()
