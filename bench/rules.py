"""Classification throughput: N generated rules over M parsed messages, on one core.

    .venv/bin/python bench/rules.py [--rules 1000] [--messages 10000]
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from synthetic import WORDS, domain_terms, support_mails

from mailbot.identify import CustomerMatch, CustomerSource
from mailbot.parsing import parse_message
from mailbot.rules import RuleEngine, load_rules


def generated_rules(count: int, terms: list[str], seed: int = 11,
                    everyday_share: float = 0.05) -> str:
    """Rules of the three kinds the issue names: contains, matches and header tests.

    Most rules name product terms or error codes; `everyday_share` of them use phrases of
    everyday words that occur in most mails.
    """
    rng = random.Random(seed)
    lines = ["rules:"]
    for n in range(count):
        severity = rng.choice(["P1", "P2", "P3", "P4"])
        field = rng.choice(["subject", "body", "body"])
        pool = WORDS if rng.random() < everyday_share else terms
        kind = n % 3
        if kind == 0:
            needles = ", ".join(f"'{rng.choice(pool)}'" for _ in range(3))
            condition = f"{{{field}: {{contains: [{needles}]}}}}"
        elif kind == 1:
            first, second = rng.choice(pool), rng.choice([*WORDS, *terms])
            pattern = f"\\b{first}\\W+(?:\\w+\\W+){{0,3}}{second}\\b"
            condition = f"{{{field}: {{matches: '{pattern}'}}}}"
        else:
            condition = f"{{header: {{name: x-mailer, contains: 'client-{n}'}}}}"
        lines.append(f"  - {{id: r{n}, severity: {severity}, when: {condition}}}")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rules", type=int, default=1000)
    parser.add_argument("--messages", type=int, default=10000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        path = Path(work) / "rules.yaml"
        terms = domain_terms()
        path.write_text(generated_rules(args.rules, terms))
        started = time.perf_counter()
        engine = RuleEngine(load_rules(path))
        load_s = time.perf_counter() - started
    messages = [parse_message(raw) for raw in
                support_mails(args.messages, attachment_share=0, terms=terms)]
    customer = CustomerMatch(None, CustomerSource.MISSING)
    started = time.perf_counter()
    hits = sum(len(engine.classify(m, customer).hits) for m in messages)
    elapsed = time.perf_counter() - started
    print(f"{args.rules} rules loaded and compiled in {load_s:.2f} s")
    print(f"{len(messages)} classifications in {elapsed:.1f} s = "
          f"{len(messages) / elapsed:,.0f} classifications/s ({hits:,} rule hits)")


if __name__ == "__main__":
    main()
