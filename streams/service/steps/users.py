"""The user step: identity, activity and user-requests messages in, decisions out.

Each message is validated (the window around ``now``; on user-requests, the workers' seal), routed
(an event on another user's partition is forwarded once, sealed, to its own), decided by the
engine, and, when it carries a session, told to the IDS join (sightings). A message that fails any
of these goes to dead letters with the reason; one whose decision raises is dead-lettered with the
exception and its user's state repaired, and its neighbours are decided as without it.

A sighting whose join key is held on this worker (the join's partitions go with the users' own,
co-partitioned) is applied to the join in the step, as :class:`~streams.engine.engine.Replay`
applies every sighting: an alert already waiting there meets the session at once, and the join's
changed keys join the step's state, written at the same commit point as the users'. Only a key held
by another worker travels, sealed, on the ``sightings`` topic.
"""

from __future__ import annotations

from collections.abc import MutableMapping, Sequence
from typing import Any

import orjson

from streams.engine import Event
from streams.engine.events import MAX_CHARS
from streams.engine.join import JoinView, Target
from streams.service.pipeline.ingest import Rejected
from streams.service.pipeline.outbox import Record
from streams.service.pipeline.sealed import ForgedRecord, open_request, refuse
from streams.service.steps.result import StepResult, safe_dumps
from streams.service.web.admin import AdminRequest, parse_request as parse_admin_request


class UserSteps:
    """Steps over the users' partitions (mixed into :class:`~streams.service.steps.Steps`)."""

    def decide_users(self, msgs: Sequence[Any], now: float, *, expire: bool = False,
                     join_data: MutableMapping[str, dict] | None = None) -> StepResult:
        """Decide a batch of identity, activity and user-requests messages at ``now``; with
        ``expire``, also the deadlines due by ``now`` (the shell says when it has caught up with
        its input, see streams/service/pipeline/catchup.py).

        ``join_data`` is the IDS join's table (read only, as :meth:`decide_join` reads it): the
        sightings of keys this worker holds are applied to it, their changes in the step's
        ``join_state``. Without it every sighting becomes a record on the ``sightings`` topic."""
        step = StepResult(now)
        outputs, records, touched, tally = step.outputs, step.records, step.touched, step.tally
        view = JoinView(join_data) if join_data is not None else None
        targets: list[Target] = []
        engine, names, sealer = self.engine, self.names, self.sealer
        requests_topic, dlt = names.user_requests, names.dead_letters
        counts = tally.events_in
        saw = tally.saw
        for msg in msgs:
            saw.add((msg.topic, msg.partition))
            if step.inbound_ts is None:
                step.inbound_ts = msg.timestamp
            n_out, n_rec, n_tgt = len(outputs), len(records), len(targets)
            event = None
            try:
                value = msg.value
                if msg.topic == requests_topic:  # sealed by a worker or the admin API
                    key = msg.key.encode() if isinstance(msg.key, str) else msg.key
                    value = open_request(sealer, msg.topic, key, value)
                    if isinstance(value, ForgedRecord):  # never applied: counted, audited, dead-lettered
                        tally.forged.append((msg.topic, value.reason))
                        outputs.append(refuse(None, msg.topic, msg.partition, msg.offset, key, value, now))
                        step.dead_letter(dlt, msg, Rejected(f"refused: {value}", "seal"))
                        continue
                result = self.decode_user_message(msg, now, value)
                if isinstance(result, Rejected):
                    step.dead_letter(dlt, msg, result)
                    continue
                event = result
                ck = (msg.topic, event.type)
                counts[ck] = counts.get(ck, 0) + 1
                user = event.user
                if user is None:  # alerts without a user reach this step only resolved, through user-requests
                    step.dead_letter(dlt, msg, Rejected("no user to route the event to", "user"))
                    continue
                if self.partition_of(user) != msg.partition:
                    # produced with another partitioner or key: forward once to the user's partition
                    tally.forwarded += 1
                    k = user.encode()
                    records.append((requests_topic, k, sealer.seal(requests_topic, k, value), None))
                    continue
                if isinstance(event, AdminRequest):  # a manual revoke, on the user's own partition
                    if self.admin is None:
                        raise RuntimeError("an operator request, and no admin API to handle it")
                    outputs.extend(self.admin(event, now))
                    touched.append(user)
                    continue
                outputs.extend(engine.handle(event, now))
                touched.append(user)
                if event.session is not None and event.type != "alert":
                    n_sight = len(records)
                    try:
                        self.sighting_records(event, records, view, targets, now)
                    except Exception as exc:  # the join's fault, not the user's: the decision stands
                        del records[n_sight:], targets[n_tgt:]
                        step.fault_record(dlt, "ids-join", exc, safe_dumps(
                            {"sighting": {"user": user, "session": event.session, "ip": event.ip, "ts": event.ts}}))
            except Exception as exc:  # this record only: its neighbours are decided as without it
                # what it decided before the fault is in the state already: its revocations go out
                # (fail closed), the rest of its outputs are dropped
                kept = [o for o in outputs[n_out:] if o.kind == "decision"]
                del outputs[n_out:], records[n_rec:], targets[n_tgt:]
                outputs.extend(kept)
                step.fault(dlt, msg, exc, "decide")
                user = getattr(event, "user", None)
                if type(user) is str:
                    self.repair(user, now, outputs, touched)
        if targets:  # alerts waiting in the join met sessions of this batch
            outputs.extend(self.deliver_targets(targets, step))
        if view is not None and view.touched:
            step.join_state = view.touched
        if expire:
            self.expire_deadlines(step)
        return step

    def decode_user_message(self, msg: Any, now: float, value: bytes | None = None) -> Event | Rejected:
        """Canonical event bytes, or (on user-requests, ``value`` opened) an envelope
        ``{"kind": "target" | "manual_revoke", ...}``."""
        if value is None:
            value = msg.value
        if msg.topic == self.names.user_requests and value and value[:9] == b'{"kind":"':
            try:
                env = orjson.loads(value)
                if env.get("kind") == "target":
                    user, session = env.get("user"), env.get("session")
                    if type(user) is not str or not user or len(user) > MAX_CHARS["user"]:
                        return Rejected("target: user must be a non-empty string of at most 1024 characters", "user")
                    if session is not None and (type(session) is not str or not session
                                                or len(session) > MAX_CHARS["session"]):
                        return Rejected("target: session must be null or a non-empty string of at most 1024 "
                                        "characters", "session")
                    alert = self.decode(orjson.dumps(env.get("alert")), now)
                    if isinstance(alert, Rejected):
                        return alert
                    if alert.type != "alert":
                        return Rejected(f"target: expected an alert, got {alert.type!r}", "alert")
                    return alert.targeted(user, session)
                if env.get("kind") == "manual_revoke":  # from the admin API (POST /api/revoke)
                    return parse_admin_request(env)
                return Rejected(f"unknown request kind {str(env.get('kind'))[:40]!r}", "kind")
            except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
                return Rejected(f"malformed request envelope: {exc}", None)
        return self.decode(value, now)

    def sighting_records(self, event: Event, records: list[Record], view: JoinView | None = None,
                         targets: list[Target] | None = None, now: float = 0.0) -> None:
        """Tell the IDS join who uses this IP and session, when the join's rule says so
        (:class:`~streams.engine.join.SightingGate`: on change, then once per refresh interval):
        into ``view`` for a key held here (what it meets into ``targets``), else as a sealed
        record on the sightings topic."""
        keys = self.gate.due(event)
        if keys:
            value = None
            for key in keys:
                if view is not None and self.owns_join_key(key):
                    targets.extend(self.join.sighting(view, key, event.user, event.session, event.ts, now))
                    continue
                if value is None:
                    value = orjson.dumps({"kind": "sighting", "user": event.user, "session": event.session,
                                          "ts": event.ts})
                topic = self.names.sightings
                k = key.encode()
                records.append((topic, k, self.sealer.seal(topic, k, value), self.join_partition_of(key)))

    def expire_deadlines(self, step: StepResult) -> None:
        """The deadlines due by the step's ``now`` into its outputs; those the engine could not
        decide (revoked, fail closed, where that still worked) to dead letters."""
        engine = self.engine
        step.outputs.extend(engine.expire(step.now))
        faults = engine.faults
        if faults:
            engine.faults = []
            for key, exc in faults:
                step.fault_record(self.names.dead_letters, "expiry", exc,
                                  safe_dumps({"user": key[0], "session": key[1]}))

    # the attributes the mixin reads (set by StepContext)
    engine: Any
    names: Any
    sealer: Any
    gate: Any
    admin: Any
    partition_of: Any
    decode: Any
    repair: Any

