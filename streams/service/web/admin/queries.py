"""The read side of the operator API over Kafka topics: audit and timeline queries.

One concept: answering a query scoped by ``(user, session, since, until)`` — parse the scope from
the query string (:func:`scope_of`, :func:`parse_time`), read the topics (:func:`scan_topics`),
filter what was read (:func:`filter_audit`) and assemble a user's or a session's history
(:func:`timeline`). None of it is HTTP: the views in :mod:`.views` only call these.

**Audit queries** read the audit topic itself (retention 400 days; keyed by user, so a user's
records are on one partition): seek by timestamp to ``since``, read to the end offset (bounded by
``MAX_SCAN`` records), filter by user, session and time. No extra state on the hot path, and any
worker can answer for any user. Without ``user`` every partition is scanned (bounded the same way).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

from streams.engine.decisions import rfc3339
from streams.engine.events import InvalidEvent, parse_ts
from streams.service.pipeline.partitioning import partition_for

if TYPE_CHECKING:
    from streams.service.web.admin.operator import Operator
    from streams.service.app import Service

MAX_SCAN = 200_000          # records read per audit/timeline query, at most
DEFAULT_LIMIT = 500
SCAN_SINCE_MARGIN_S = 300.0  # Kafka timestamps are produce time; records' "at" is event time


def scope_of(query: Any) -> tuple[str | None, str | None, float | None, float | None]:
    """``(user, session, since, until)`` of an audit/timeline query; ValueError names a bad time."""
    return (query.get("user") or None, query.get("session") or None,
            parse_time(query.get("since")), parse_time(query.get("until")))


def parse_time(value: str | None) -> float | None:
    """Epoch seconds or RFC 3339 -> epoch seconds.

    >>> parse_time("2026-01-01T00:00:00Z"), parse_time("1767225600"), parse_time(None)
    (1767225600.0, 1767225600.0, None)
    """
    if value is None or value == "":
        return None
    try:
        return parse_ts(float(value))
    except ValueError:
        pass
    try:
        return parse_ts(value)  # the project's one RFC 3339 reader: a time without a zone is refused
    except InvalidEvent as exc:
        raise ValueError(f"expected epoch seconds or RFC 3339 with a zone, got {value[:64]!r} ({exc.reason})") from None


async def scan_topics(service: "Service", wanted: list[tuple[str, str | None]], since: float | None,
                      until: float | None, max_scan: int = MAX_SCAN) -> dict[str, list[tuple[bytes | None, Any, int]]]:
    """Read ``(topic, key)`` pairs (key ``None``: every partition) from ``since`` to the end offset.

    Returns ``{topic: [(key, value, timestamp_ms), ...]}`` in partition order; one consumer, no group.
    """
    from aiokafka import AIOKafkaConsumer, TopicPartition

    settings = service.settings
    consumer = AIOKafkaConsumer(group_id=None, enable_auto_commit=False, auto_offset_reset="earliest",
                                **settings.kafka_kwargs())
    await consumer.start()
    out: dict[str, list[tuple[bytes | None, Any, int]]] = {t: [] for t, _ in wanted}
    try:
        # the consumer's own metadata only covers assigned topics: ask the cluster for all of them
        from streams.service.compat import internals

        cluster = await internals.fetch_all_metadata(consumer)
        keys: dict[TopicPartition, set[bytes] | None] = {}
        for topic, key in wanted:
            parts = cluster.partitions_for_topic(topic) or set()
            if not parts:
                continue
            if key is None:
                for p in parts:
                    keys[TopicPartition(topic, p)] = None
            else:
                tp = TopicPartition(topic, partition_for(key.encode(), len(parts)))
                if tp not in keys:
                    keys[tp] = set()
                if keys[tp] is not None:
                    keys[tp].add(key.encode())  # type: ignore[union-attr]
        if not keys:
            return out
        tps = list(keys)
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        starts: dict[TopicPartition, int] = {}
        if since is not None:
            found = await consumer.offsets_for_times({tp: int((since - SCAN_SINCE_MARGIN_S) * 1000) for tp in tps})
            for tp in tps:
                starts[tp] = found[tp].offset if found.get(tp) is not None else ends[tp]
        else:
            starts = await consumer.beginning_offsets(tps)
        todo = set()
        for tp in tps:
            if starts[tp] < ends[tp]:
                consumer.seek(tp, starts[tp])
                todo.add(tp)
        scanned = 0
        until_ms = int((until + SCAN_SINCE_MARGIN_S) * 1000) if until is not None else None
        while todo and scanned < max_scan:
            batches = await consumer.getmany(*todo, timeout_ms=500, max_records=5000)
            if not batches:
                # nothing within the timeout: re-check positions (compacted gaps, transactional markers)
                for tp in list(todo):
                    if await consumer.position(tp) >= ends[tp]:
                        todo.discard(tp)
                continue
            for tp, records in batches.items():
                want = keys[tp]
                for r in records:
                    if r.offset >= ends[tp]:
                        break
                    scanned += 1
                    if want is not None and r.key not in want:
                        continue
                    if until_ms is not None and r.timestamp > until_ms:
                        continue
                    try:
                        value = orjson.loads(r.value) if r.value is not None else None
                    except orjson.JSONDecodeError:
                        continue
                    out[tp.topic].append((r.key, value, r.timestamp))
                if records and (records[-1].offset >= ends[tp] - 1):
                    todo.discard(tp)
        return out
    finally:
        await consumer.stop()


def _at(value: dict[str, Any]) -> float | None:
    at = value.get("at")
    if isinstance(at, str):
        try:
            return parse_time(at)
        except ValueError:
            return None
    return None


def filter_audit(records: list[dict[str, Any]], user: str | None, session: str | None, since: float | None,
                 until: float | None, limit: int) -> list[dict[str, Any]]:
    """The newest ``limit`` records matching user/session/[since, until] (by their ``at``), oldest first.

    >>> recs = [{"user": "u", "session": "s", "at": "2026-01-01T00:00:0%dZ" % i, "kind": "k"} for i in range(5)]
    >>> [r["at"][-3:] for r in filter_audit(recs, "u", None, 1767225601, 1767225603, 2)]
    ['02Z', '03Z']
    """
    out = []
    for v in records:
        if not isinstance(v, dict):
            continue
        if user is not None and v.get("user") != user:
            continue
        if session is not None and v.get("session") != session:
            continue
        at = _at(v)
        if since is not None and (at is None or at < since):
            continue
        if until is not None and (at is None or at > until):
            continue
        out.append(v)
    out.sort(key=lambda v: (_at(v) or 0.0))
    return out[-limit:] if limit else out


async def timeline(service: "Service", op: Operator, user: str, session: str | None, since: float | None,
                   until: float | None) -> dict[str, Any]:
    """Everything about a user (or one session): state, events, audit records, decisions, scores."""
    now = service.clock()
    us = op.user_state(user)
    sessions = []
    if us is not None:
        sessions = [op.session_view(s, now) for s in us.sessions.values() if session is None or s.session == session]
    if since is None:
        starts = [parse_time(s["started"]) for s in sessions]
        since = min([t for t in starts if t is not None], default=now - 86400.0) - 60.0
    t = service.settings.topic
    session_keys = [session] if session else [s["session"] for s in sessions][:20]
    wanted: list[tuple[str, str | None]] = [(t("audit"), user), (t("identity"), user), (t("activity"), user)]
    wanted += [(t("revocations"), s) for s in session_keys]
    got = await scan_topics(service, wanted, since, until, max_scan=MAX_SCAN)
    audits = filter_audit([v for _, v, _ in got[t("audit")]], user, session, since, until, 1000)
    events = []
    for topic in (t("identity"), t("activity")):
        for _, v, _ in got[topic]:
            if not isinstance(v, dict) or v.get("user") != user or (session and v.get("session") != session):
                continue
            try:  # the adapters write RFC 3339 strings, producers often epoch seconds: both count
                ts = parse_ts(v.get("ts"))
            except InvalidEvent:
                continue
            if (until is None or ts <= until) and ts >= since:
                events.append({**v, "ts_epoch": ts})
    events.sort(key=lambda v: v["ts_epoch"])
    decisions: dict[str, dict[str, Any]] = {}
    for _, v, _ in got.get(t("revocations"), []):
        d = v.get("decision") if isinstance(v, dict) else None
        if isinstance(d, dict) and d.get("user") == user and (session is None or d.get("session") == session):
            decisions[d["id"]] = d
    for d in op.recent:
        if d.get("user") == user and (session is None or d.get("session") == session):
            decisions.setdefault(d["id"], d)
    decs = sorted(decisions.values(), key=lambda d: d.get("at", ""))
    scores = [{"at": d["at"], "score": d["score"], "source": f"decision:{d['reason']}"} for d in decs
              if d.get("score") is not None]
    scores += [{"at": rfc3339(now), "score": s["risk"], "source": f"session:{s['session']}"} for s in sessions
               if s.get("risk") is not None]
    return {"user": user, "session": session, "owned": service.owns_user(user), "sessions": sessions,
            "events": events[-1000:], "audit": audits, "decisions": decs, "scores": scores,
            "since": rfc3339(since), "until": rfc3339(until) if until else None, "now": rfc3339(now),
            "policy_version": service.engine.policy.version}
