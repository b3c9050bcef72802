"""Every real-world mail of ../shared/corpus through `mailbot ingest`: a ticket or a quarantine."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from conftest import CORPUS

NOT_MAIL = {".yml", ".json", ".md"}


def corpus_files() -> list[Path]:
    return sorted(p for p in CORPUS.rglob("*")
                  if p.is_file() and p.suffix not in NOT_MAIL and "LICENSES" not in p.parts)


def test_every_corpus_file_becomes_a_ticket_or_a_quarantine_entry(tmp_path: Path) -> None:
    """No exception escapes; each file is accounted for; the database holds each one."""
    files = corpus_files()
    assert len(files) > 600, f"corpus not found at {CORPUS}"
    config = tmp_path / "config.yaml"
    config.write_text("storage: {dir: state}\nlogging: {format: json, level: error}\n")
    result = subprocess.run(
        [sys.executable, "-m", "mailbot", "--config", str(config), "ingest", "--json",
         *map(str, files)], capture_output=True, timeout=600, check=False)
    assert result.returncode == 0, result.stderr.decode()[-3000:]
    rows = json.loads(result.stdout)
    assert [r["file"] for r in rows] == [str(f) for f in files]
    unaccounted = [r for r in rows if not (r["ticket_number"] or r["quarantine_id"])]
    assert unaccounted == []
    quarantined = [r for r in rows if r["outcome"] == "quarantined"]
    assert all(r["reason"] for r in quarantined)
    assert len(quarantined) < len(rows) * 0.05, [(r["file"], r["reason"]) for r in quarantined]
    listed = subprocess.run([sys.executable, "-m", "mailbot", "--config", str(config),
                             "quarantine", "list", "--json"], capture_output=True, timeout=120,
                            check=True)
    assert len(json.loads(listed.stdout)) == len({r["quarantine_id"] for r in quarantined})
