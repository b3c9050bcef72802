"""`bench/corpus.py` over ../shared/corpus: no crash, no auto-reply to machines, Zammad's
expectations met at the rate the README states."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import CORPUS, REPO


def test_the_corpus_harness_finds_no_crash_no_loss_and_no_reply_to_a_machine() -> None:
    result = subprocess.run([sys.executable, str(REPO / "bench" / "corpus.py"), str(CORPUS),
                             "--json"], capture_output=True, text=True, timeout=300,
                            check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    totals = json.loads(result.stdout)
    assert totals["files"] > 600
    assert (totals["crashed"], totals["lost_content"], totals["mojibake"],
            totals["auto_replies_to_automatic_mail"]) == (0, 0, 0, 0)
    assert totals["automatic"] >= 380
    assert totals["bounces_recognised"] / totals["bounces"] >= 0.97
    assert totals["zammad_expectations"] >= 300
    assert totals["zammad_rate"] >= 0.97, totals["zammad_by_field"]
    assert totals["zammad_rate_with_corrections"] >= 0.98, totals["zammad_by_field"]
