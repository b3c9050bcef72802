"""Ingestion throughput of mailbot against the floor, measured in the same run.

    .venv/bin/python bench/ingest.py [--count 10000] [--rounds 3] [--database postgresql]

N synthetic support mails (2-20 KB, a third multipart/alternative, 5 % with a 200 KB file,
15 % customers' answers threaded on an earlier ticket's auto-reply) are appended once to a
folder of a throwaway Dovecot. Each round copies them to INBOX and times one contender
draining it, floor and mailbot alternating:

- floor: bench/floor.py, the least any ingester must do (FETCH in batches of 100,
  mail-parser, one SQLite row per message, a commit per 100);
- mailbot: `mailbot poll` with the shipped configuration, rules, templates, calendars and
  notices: tickets and follow-ups stored, every auto-reply delivered to an SMTP server on
  loopback (with --notify-agents, the agents' notifications too), and each message moved
  to Processed after its commit.

The SMTP server is bench/smtp_sink.py, which only counts what it takes; with
--smtp aiosmtpd it is the test suite's aiosmtpd server, which costs about 0.8 ms of CPU a
mail received on the same cores as mailbot.

Both run as their own process and are timed from start to exit. Prints messages/s per round,
the medians and the ratio mailbot/floor; and, steadier than the rates when the machine is
shared, the CPU each spent a message (user and system time of the process and the processes
it waited for: mailbot's analysis workers; not Dovecot's nor the SMTP server's). Each round
also says how much of the machine's CPU time was idle and how much the hypervisor took for
other machines ("stolen"): a round with much stolen time ran on a slower machine.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import create_engine, text

sys.path.insert(0, str(Path(__file__).resolve().parent))

from smtp_sink import SmtpSink
from synthetic import support_mails

from mailbot.conversation.ids import ThreadSigner
from mailbot.testing import DovecotServer, SmtpCapture, throwaway_database

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
SECRET = "b3f1c0ffee5eed0fb3f1c0ffee5eed0f"
SOURCE_FOLDER = "Source"
DOMAIN = "example.test"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--smtp", choices=["sink", "aiosmtpd"], default="sink",
                        help="the SMTP server that receives the auto-replies")
    parser.add_argument("--notify-agents", action="store_true",
                        help="also tell the agents of every new ticket and customer answer")
    args = parser.parse_args()
    with ExitStack() as stack:
        dovecot = stack.enter_context(DovecotServer(mail_location="sdbox:~/sdbox"))
        smtp: SmtpServer = (stack.enter_context(SmtpSink()) if args.smtp == "sink"
                            else stack.enter_context(SmtpCapture()))
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="mbbench-")))
        signer = ThreadSigner(SECRET.encode())
        started = time.perf_counter()
        appended = dovecot.append_many(SOURCE_FOLDER, support_mails(
            args.count, reply_id=lambda n: signer.new_id(n, "auto_reply", DOMAIN)))
        print(f"appended {appended} mails in {time.perf_counter() - started:.1f} s")
        floor_rates: list[float] = []
        mailbot_rates: list[float] = []
        floor_cpu: list[float] = []
        mailbot_cpu: list[float] = []
        for number in range(1, args.rounds + 1):
            refill(dovecot)
            timing = run_floor(dovecot, work / f"floor-{number}.db", appended)
            floor_rates.append(appended / timing.seconds)
            floor_cpu.append(timing.cpu / appended)
            print(f"round {number} floor:   {describe(timing, appended)}", flush=True)
            refill(dovecot)
            with ExitStack() as round_stack:
                url = (round_stack.enter_context(throwaway_database())
                       if args.database == "postgresql"
                       else f"sqlite:///{work / f'mailbot-{number}.db'}")
                timing = run_mailbot(dovecot, smtp, work / f"round-{number}", url, appended,
                                     notify_agents=args.notify_agents)
            mailbot_rates.append(appended / timing.seconds)
            mailbot_cpu.append(timing.cpu / appended)
            print(f"round {number} mailbot: {describe(timing, appended, args.database)}",
                  flush=True)
    floor, mailbot = statistics.median(floor_rates), statistics.median(mailbot_rates)
    print(f"median floor {floor:.1f} messages/s, mailbot ({args.database}) {mailbot:.1f} "
          f"messages/s: ratio {mailbot / floor:.2f}")
    print(f"median CPU a message: floor {1000 * statistics.median(floor_cpu):.2f} ms, "
          f"mailbot {1000 * statistics.median(mailbot_cpu):.2f} ms")


SmtpServer = SmtpSink | SmtpCapture


def received(smtp: SmtpServer) -> int:
    """How many mails the SMTP server has taken so far."""
    return smtp.received if isinstance(smtp, SmtpSink) else len(smtp.messages)


def describe(timing: Timing, messages: int, database: str | None = None) -> str:
    """A round's rate, time, CPU a message and what the machine did meanwhile."""
    where = f"{database}, " if database else ""
    return (f"{messages / timing.seconds:7.1f} messages/s ({timing.seconds:.1f} s, {where}CPU "
            f"{1000 * timing.cpu / messages:.2f} ms a message; machine "
            f"{100 * timing.idle:.0f} % idle, {100 * timing.steal:.0f} % stolen)")


def refill(dovecot: DovecotServer) -> None:
    """INBOX holds exactly the source mails again, and Processed is empty."""
    client = dovecot.client()
    try:
        for folder in ("INBOX", "Processed", "Quarantine"):
            if client.folder_exists(folder):
                client.select_folder(folder)
                uids = client.search(["ALL"])
                if uids:
                    client.delete_messages(uids)
                    client.expunge()
        client.select_folder(SOURCE_FOLDER, readonly=True)
        client.copy(client.search(["ALL"]), "INBOX")
    finally:
        client.logout()


@dataclass(frozen=True)
class Timing:
    """One contender's run: wall-clock and CPU seconds, and what the machine did meanwhile."""

    seconds: float
    cpu: float  # user and system time of the process and the processes it waited for
    idle: float  # share of the machine's CPU time left idle (or waiting for the disk)
    steal: float  # share taken by the hypervisor for other machines: a slower round


def timed(command: list[str]) -> tuple[Timing, subprocess.CompletedProcess[bytes]]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    ticks_before = cpu_ticks()
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, timeout=3600, check=False)
    seconds = time.perf_counter() - started
    ticks = [b - a for a, b in zip(ticks_before, cpu_ticks(), strict=True)]
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if result.returncode != 0:
        sys.exit(f"{' '.join(command[:4])} failed:\n{result.stderr.decode()[-3000:]}")
    total = max(1, sum(ticks))
    return Timing(seconds, cpu, (ticks[3] + ticks[4]) / total, ticks[7] / total), result


def cpu_ticks() -> list[int]:
    """The machine's CPU time so far by kind (user, nice, system, idle, iowait, irq,
    softirq, steal), from /proc/stat; zeros where there is none."""
    try:
        with open("/proc/stat") as stat:
            fields = stat.readline().split()[1:9]
    except OSError:
        fields = []
    return [int(x) for x in fields] + [0] * (8 - len(fields))


def run_floor(dovecot: DovecotServer, database: Path, expected: int) -> Timing:
    timing, result = timed([sys.executable, str(BENCH / "floor.py"), dovecot.host,
                             str(dovecot.port), dovecot.username, dovecot.password, "INBOX",
                             str(database)])
    stored = int(result.stdout)
    assert stored == expected, f"floor stored {stored} of {expected}"
    return timing


def run_mailbot(dovecot: DovecotServer, smtp: SmtpServer, work: Path, url: str,
                expected: int, *, notify_agents: bool) -> Timing:
    work.mkdir()
    config_file = work / "config.yaml"
    config_file.write_text(yaml.safe_dump(mailbot_config(dovecot, smtp, work, url,
                                                         notify_agents=notify_agents)))
    mailbot = [sys.executable, "-m", "mailbot", "--config", str(config_file)]
    subprocess.run([*mailbot, "db", "upgrade"], check=True, capture_output=True, timeout=300)
    before = received(smtp)
    timing, result = timed([*mailbot, "poll", "--json"])
    (report,) = json.loads(result.stdout)
    tickets, follow_ups = report["tickets"], report["follow_ups"]
    assert tickets + follow_ups == expected and report["quarantined"] == 0, report
    assert dovecot.count("INBOX") == 0
    sent = received(smtp) - before
    engine = create_engine(url)
    with engine.connect() as connection:
        outbox = dict(connection.execute(text(
            "SELECT status, count(*) FROM outbox GROUP BY status")).all())
        replies = connection.execute(text(
            "SELECT count(*) FROM outbox WHERE kind = 'auto_reply'")).scalar_one()
    engine.dispose()
    assert set(outbox) == {"sent"} and outbox["sent"] == sent, (outbox, sent)
    print(f"  {tickets} tickets, {follow_ups} follow-ups, {replies} auto-replies "
          f"({tickets - replies} held back by the per-sender limit), {sent} mails "
          f"delivered", flush=True)
    return timing


def mailbot_config(dovecot: DovecotServer, smtp: SmtpServer, work: Path, url: str, *,
                   notify_agents: bool) -> dict[str, Any]:
    """The shipped example configuration, pointed at the loopback servers."""
    config = shipped_config(work, url, notify_agents=notify_agents)
    config["mailboxes"] = [{"name": "support", "imap": {
        "host": dovecot.host, "port": dovecot.port, "security": "none",
        "username": dovecot.username, "password": dovecot.password}}]
    config["smtp"] = {"host": smtp.host, "port": smtp.port, "security": "none",
                      "from": f"Example Support <support@{DOMAIN}>"}
    return config


def shipped_config(work: Path, url: str, *, notify_agents: bool = False) -> dict[str, Any]:
    """The shipped example configuration with its own database and storage, no mailbox."""
    config = yaml.safe_load((ROOT / "config.example.yaml").read_text())
    config["mailboxes"] = []
    config["smtp"] = {"host": "127.0.0.1", "port": 25, "security": "none",
                      "from": f"Example Support <support@{DOMAIN}>"}
    config["database"] = {"url": url}
    config["storage"] = {"dir": str(work)}
    config["rules"]["path"] = str(ROOT / "rules")
    config["agents"] = {"domains": [DOMAIN],
                        "notify": [f"team@{DOMAIN}"] if notify_agents else []}
    config["escalation"].update(level1=[f"team@{DOMAIN}"], level3=[f"product@{DOMAIN}"])
    config["secret_key"] = SECRET
    config["logging"] = {"format": "json", "level": "warning"}
    return config


if __name__ == "__main__":
    main()
