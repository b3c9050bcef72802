"""The least any ingester must do: fetch every message, parse it, keep it in SQLite.

imapclient FETCH of BODY.PEEK[] in batches of 100, mail-parser on each message, one row per
message (Message-ID, sender, subject, text body, raw bytes) with a commit per 100. SQLite
runs with the pragmas mailbot uses (WAL, synchronous=FULL). Prints the number of rows.

    python bench/floor.py HOST PORT USERNAME PASSWORD FOLDER DATABASE
"""

from __future__ import annotations

import logging
import sqlite3
import sys

import mailparser
from imapclient import IMAPClient

BATCH = 100
logging.getLogger("mailparser").setLevel(logging.ERROR)


def main(host: str, port: str, username: str, password: str, folder: str,
         database: str) -> int:
    client = IMAPClient(host, port=int(port), ssl=False, timeout=60)
    client.login(username, password)
    client.select_folder(folder, readonly=True)
    uids = sorted(client.search(["ALL"]))
    db = sqlite3.connect(database)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE IF NOT EXISTS messages (id INTEGER PRIMARY KEY, uid INTEGER,"
               " message_id TEXT, sender TEXT, subject TEXT, body TEXT, raw BLOB)")
    stored = 0
    for start in range(0, len(uids), BATCH):
        batch = uids[start:start + BATCH]
        fetched = client.fetch(batch, ["BODY.PEEK[]"])
        rows = []
        for uid in batch:
            raw = bytes(fetched[uid][b"BODY[]"])
            mail = mailparser.parse_from_bytes(raw)
            sender = mail.from_[0][1] if mail.from_ else ""
            rows.append((uid, mail.message_id, sender, mail.subject,
                         "\n".join(mail.text_plain), raw))
        db.executemany("INSERT INTO messages (uid, message_id, sender, subject, body, raw)"
                       " VALUES (?, ?, ?, ?, ?, ?)", rows)
        db.commit()
        stored += len(rows)
    db.close()
    client.logout()
    return stored


if __name__ == "__main__":
    print(main(*sys.argv[1:7]))
