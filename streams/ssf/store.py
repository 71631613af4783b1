"""The transmitter's durable state: one SQLite database in ``LAPSE_SSF_STATE_DIR``.

Why a local database and not a Kafka topic: a stream's pending SETs form a queue that push
delivery takes from the head, in order, and poll delivery acknowledges by ``jti`` in any order;
both need "delete this entry" and "what is next" at once, with the position on the revocations
topic moved in the **same transaction** as the entries it produced. SQLite in WAL mode with
``synchronous=FULL`` fsyncs every commit, so after a crash (kill -9, power loss) the database
holds exactly the committed transactions:

* ``streams``, ``subjects``: the stream configurations (SSF 1.0 section 8) and their subjects;
* ``queue``: every SET not yet delivered, per target (``stream:<id>`` or ``bcl:<client>``), in
  ``seq`` order; a row is deleted only after the receiver took it (202 for push, an ``ack`` for
  poll, a 200 for back-channel logout);
* ``offsets``: the next revocations-topic offset per partition. Fan-out inserts a batch's queue
  rows and moves the offsets in one transaction: a crash re-reads nothing it committed and
  loses nothing it did not;
* ``failed``: SETs a receiver refused as invalid (RFC 8935 ``invalid_request``, RFC 8936
  ``setErrs``, a logout endpoint's 400), kept with the error.

A second ``lapse ssf`` on the same directory is refused (an exclusive ``flock``): one
transmitter owns a state directory. The file is created mode 0600: it holds the receivers'
push ``authorization_header`` values.
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS streams (
    id TEXT PRIMARY KEY, owner TEXT NOT NULL, config TEXT NOT NULL, status TEXT NOT NULL,
    reason TEXT, created REAL NOT NULL, updated REAL NOT NULL, verified_at REAL
);
CREATE TABLE IF NOT EXISTS subjects (
    stream_id TEXT NOT NULL, key TEXT NOT NULL, subject TEXT NOT NULL, added REAL NOT NULL,
    PRIMARY KEY (stream_id, key)
);
CREATE TABLE IF NOT EXISTS queue (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, target TEXT NOT NULL, jti TEXT NOT NULL,
    payload TEXT NOT NULL, control INTEGER NOT NULL DEFAULT 0, enqueued REAL NOT NULL,
    offered REAL, attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT,
    UNIQUE (target, jti)
);
CREATE INDEX IF NOT EXISTS queue_by_target ON queue (target, seq);
CREATE TABLE IF NOT EXISTS offsets (
    topic TEXT NOT NULL, partition INTEGER NOT NULL, next INTEGER NOT NULL,
    PRIMARY KEY (topic, partition)
);
CREATE TABLE IF NOT EXISTS failed (
    target TEXT NOT NULL, jti TEXT NOT NULL, err TEXT, description TEXT, at REAL NOT NULL,
    payload TEXT NOT NULL
);
"""


class StateLocked(RuntimeError):
    """Another ``lapse ssf`` holds this state directory."""


class Store:
    """Synchronous; the server calls it from one dedicated thread (never the event loop)."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.path = d / "ssf.sqlite3"
        self._lock = open(d / "ssf.lock", "a+")
        try:
            fcntl.flock(self._lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._lock.close()
            raise StateLocked(f"{d} is in use by another lapse ssf process (one transmitter per state directory)") from None
        if not self.path.exists():
            os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
        self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute("PRAGMA foreign_keys=OFF")
        self.db.executescript(SCHEMA)

    def close(self) -> None:
        self.db.close()
        try:
            fcntl.flock(self._lock.fileno(), fcntl.LOCK_UN)
        finally:
            self._lock.close()

    def _tx(self):
        return _Tx(self.db)

    # -- streams ------------------------------------------------------------------------------
    def load_streams(self) -> list[dict[str, Any]]:
        cur = self.db.execute("SELECT id, owner, config, status, reason, created, updated, verified_at FROM streams")
        out = []
        for id_, owner, config, status, reason, created, updated, verified in cur.fetchall():
            out.append({"id": id_, "owner": owner, "config": json.loads(config), "status": status, "reason": reason,
                        "created": created, "updated": updated, "verified_at": verified})
        return out

    def put_stream(self, row: dict[str, Any]) -> None:
        with self._tx():
            self.db.execute(
                "INSERT INTO streams (id, owner, config, status, reason, created, updated, verified_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET owner=excluded.owner, "
                "config=excluded.config, status=excluded.status, reason=excluded.reason, "
                "updated=excluded.updated, verified_at=excluded.verified_at",
                (row["id"], row["owner"], json.dumps(row["config"]), row["status"], row.get("reason"),
                 row["created"], row["updated"], row.get("verified_at")))

    def delete_stream(self, stream_id: str, target: str) -> None:
        with self._tx():
            self.db.execute("DELETE FROM streams WHERE id = ?", (stream_id,))
            self.db.execute("DELETE FROM subjects WHERE stream_id = ?", (stream_id,))
            self.db.execute("DELETE FROM queue WHERE target = ?", (target,))

    def subjects(self, stream_id: str) -> list[tuple[str, dict[str, Any]]]:
        cur = self.db.execute("SELECT key, subject FROM subjects WHERE stream_id = ?", (stream_id,))
        return [(k, json.loads(s)) for k, s in cur.fetchall()]

    def add_subject(self, stream_id: str, key: str, subject: dict[str, Any]) -> None:
        with self._tx():
            self.db.execute("INSERT OR REPLACE INTO subjects (stream_id, key, subject, added) VALUES (?, ?, ?, ?)",
                            (stream_id, key, json.dumps(subject), time.time()))

    def remove_subject(self, stream_id: str, key: str) -> bool:
        with self._tx():
            cur = self.db.execute("DELETE FROM subjects WHERE stream_id = ? AND key = ?", (stream_id, key))
            return cur.rowcount > 0

    # -- the queue ----------------------------------------------------------------------------
    def enqueue(self, rows: Iterable[tuple[str, str, str, int]], offsets: dict[tuple[str, int], int] | None = None,
                now: float | None = None) -> int:
        """Insert ``(target, jti, payload, control)`` rows (a jti already queued for a target is
        skipped) and move ``offsets`` ({(topic, partition): next offset}), in one transaction."""
        now = time.time() if now is None else now
        n = 0
        with self._tx():
            for target, jti, payload, control in rows:
                cur = self.db.execute(
                    "INSERT OR IGNORE INTO queue (target, jti, payload, control, enqueued) VALUES (?, ?, ?, ?, ?)",
                    (target, jti, payload, control, now))
                n += cur.rowcount
            for (topic, partition), nxt in (offsets or {}).items():
                self.db.execute(
                    "INSERT INTO offsets (topic, partition, next) VALUES (?, ?, ?) "
                    "ON CONFLICT(topic, partition) DO UPDATE SET next = excluded.next", (topic, partition, nxt))
        return n

    def head(self, target: str, limit: int, *, control_only: bool = False,
             offered_before: float | None = None) -> list[tuple[int, str, str, int]]:
        """The oldest ``limit`` rows of ``target``: ``(seq, jti, payload, attempts)``.

        ``offered_before``: only rows never offered to a poller, or offered before that time."""
        sql = "SELECT seq, jti, payload, attempts FROM queue WHERE target = ?"
        args: list[Any] = [target]
        if control_only:
            sql += " AND control = 1"
        if offered_before is not None:
            sql += " AND (offered IS NULL OR offered < ?)"
            args.append(offered_before)
        sql += " ORDER BY seq LIMIT ?"
        args.append(limit)
        return list(self.db.execute(sql, args).fetchall())

    def mark_offered(self, seqs: list[int], at: float) -> None:
        if not seqs:
            return
        with self._tx():
            self.db.executemany("UPDATE queue SET offered = ? WHERE seq = ?", [(at, s) for s in seqs])

    def delete(self, seqs: list[int]) -> None:
        if not seqs:
            return
        with self._tx():
            self.db.executemany("DELETE FROM queue WHERE seq = ?", [(s,) for s in seqs])

    def ack(self, target: str, jtis: Iterable[str]) -> int:
        with self._tx():
            n = 0
            for j in jtis:
                n += self.db.execute("DELETE FROM queue WHERE target = ? AND jti = ?", (target, j)).rowcount
            return n

    def fail(self, target: str, errors: dict[str, tuple[str | None, str | None]], now: float | None = None) -> int:
        """Move rows (by jti) the receiver refused to ``failed`` with their error."""
        now = time.time() if now is None else now
        n = 0
        with self._tx():
            for jti, (err, description) in errors.items():
                row = self.db.execute("SELECT seq, payload FROM queue WHERE target = ? AND jti = ?", (target, jti)).fetchone()
                if row is None:
                    continue
                self.db.execute("INSERT INTO failed (target, jti, err, description, at, payload) VALUES (?, ?, ?, ?, ?, ?)",
                                (target, jti, err, description, now, row[1]))
                self.db.execute("DELETE FROM queue WHERE seq = ?", (row[0],))
                n += 1
        return n

    def note_attempt(self, seq: int, error: str) -> None:
        with self._tx():
            self.db.execute("UPDATE queue SET attempts = attempts + 1, last_error = ? WHERE seq = ?", (error[:500], seq))

    def pending(self, target: str) -> int:
        return self.db.execute("SELECT COUNT(*) FROM queue WHERE target = ?", (target,)).fetchone()[0]

    def available(self, target: str, offered_before: float) -> int:
        return self.db.execute("SELECT COUNT(*) FROM queue WHERE target = ? AND (offered IS NULL OR offered < ?)",
                               (target, offered_before)).fetchone()[0]

    def failed(self, target: str) -> list[dict[str, Any]]:
        cur = self.db.execute("SELECT jti, err, description, at FROM failed WHERE target = ? ORDER BY at", (target,))
        return [{"jti": j, "err": e, "description": d, "at": a} for j, e, d, a in cur.fetchall()]

    def drop_target(self, target: str, *, keep_control: bool = False) -> int:
        with self._tx():
            sql = "DELETE FROM queue WHERE target = ?" + (" AND control = 0" if keep_control else "")
            return self.db.execute(sql, (target,)).rowcount

    def purge_streams(self, known: set[str]) -> int:
        """Delete queue rows of streams that no longer exist (a delete racing a fan-out)."""
        with self._tx():
            targets = [t for (t,) in self.db.execute("SELECT DISTINCT target FROM queue WHERE target LIKE 'stream:%'")]
            n = 0
            for t in targets:
                if t.removeprefix("stream:") not in known:
                    n += self.db.execute("DELETE FROM queue WHERE target = ?", (t,)).rowcount
            return n

    # -- the revocations topic position -------------------------------------------------------
    def offsets(self, topic: str) -> dict[int, int]:
        cur = self.db.execute("SELECT partition, next FROM offsets WHERE topic = ?", (topic,))
        return {p: n for p, n in cur.fetchall()}


class _Tx:
    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.db.execute("COMMIT")
        else:
            self.db.execute("ROLLBACK")
