"""The IDS-join step: ids-alerts and sightings messages in, revocations of the implicated sessions out.

The join itself (keys, lookback, grace for late sightings, refresh rule) is
:class:`streams.engine.join.IdsJoin`, the one ``Replay`` runs. This step feeds it the worker's
messages: alerts from ``ids-alerts`` (validated like any input; keys held on another partition are
forwarded, sealed, to ``sightings``), and sightings and forwarded alerts from ``sightings`` (only
workers write that topic: a record a worker did not seal is refused). The (user, session) pairs
an alert implicates are decided here when the user's partition is on this worker, else sent to
that partition through ``user-requests``.
"""

from __future__ import annotations

from collections.abc import MutableMapping, Sequence
from typing import Any

import orjson

from streams.engine import Event, Output
from streams.engine.join import MAX_KEY_CHARS, JoinView, Target, alert_from, resolve_targets
from streams.service.pipeline.ingest import Rejected
from streams.service.pipeline.sealed import ForgedRecord, open_request, refuse
from streams.service.steps.result import StepResult, safe_dumps


class JoinSteps:
    """Steps over the IDS join's partitions (mixed into :class:`~streams.service.steps.Steps`)."""

    def decide_join(self, data: MutableMapping[str, dict], msgs: Sequence[Any], now: float) -> StepResult:
        """Decide a batch of ids-alerts and sightings messages at ``now`` against the join's table
        ``data`` (read only: the keys the step changes are in ``join_state``)."""
        step = StepResult(now)
        records, targets = step.records, []
        view = JoinView(data)
        alerts, dlt = self.names.ids_alerts, self.names.dead_letters
        for msg in msgs:
            n_rec, n_tgt = len(records), len(targets)
            try:
                if msg.topic == alerts:
                    step.inbound_ts = step.inbound_ts or msg.timestamp
                    self.join_alert_message(msg, step, view, targets)
                    continue
                bad = self.join_internal_message(msg, step, view, targets)
                if bad is not None:
                    step.dead_letter(dlt, msg, bad, stage="ids-join")
                elif step.inbound_ts is None and msg.value and b'"kind":"alert"' in msg.value[:400]:
                    step.inbound_ts = msg.timestamp
            except Exception as exc:  # this record only
                del records[n_rec:], targets[n_tgt:]
                step.fault(dlt, msg, exc, "ids-join")
        step.outputs[:0] = self.deliver_targets(targets, step)
        # the join's state: one changelog record per key touched, in the same step (and ticket) as
        # the decisions it led to
        step.join_state = view.touched
        return step

    def join_internal_message(self, msg: Any, step: StepResult, view: JoinView,
                              targets: list[Target]) -> Rejected | None:
        """One message of the sightings topic (a sighting, or an alert forwarded to its key's
        partition), validated before it touches the join's state. Only workers write this topic:
        a record that is not sealed by one is refused (it could point an alert at anyone)."""
        now = step.now
        raw_key = msg.key.encode() if isinstance(msg.key, str) else msg.key
        opened = open_request(self.sealer, msg.topic, raw_key, msg.value, max_age_s=None)
        if isinstance(opened, ForgedRecord):
            step.tally.forged.append((msg.topic, opened.reason))
            step.outputs.append(refuse(None, msg.topic, msg.partition, msg.offset, raw_key, opened, now))
            return Rejected(f"refused: {opened}", "seal")
        try:
            value = orjson.loads(opened) if opened else None
        except orjson.JSONDecodeError as exc:
            return Rejected(f"not valid JSON: {exc}", None)
        key = msg.key
        if type(key) is bytes:
            key = key.decode("utf-8", "replace")
        if not isinstance(value, dict) or not isinstance(key, str) or not key or len(key) > MAX_KEY_CHARS \
                or key[0] == "#":  # a spill record's key (streams/engine/join.py): never a message's
            return Rejected("expected a JSON object keyed by an IP or session:<id>", None)
        kind = value.get("kind")
        if kind == "sighting":
            user, session, ts = value.get("user"), value.get("session"), value.get("ts")
            if type(user) is not str or not user or type(session) is not str or not session:
                return Rejected("a sighting needs user and session strings", "user")
            if type(ts) not in (int, float) or not (0 <= ts <= now + self.max_skew_s):
                return Rejected("a sighting needs ts: epoch seconds, not in the future", "ts")
            targets.extend(self.join.sighting(view, key, user, session, float(ts), now))
            return None
        if kind == "alert":
            alert = alert_from(value.get("alert"))
            if alert is None:
                return Rejected("a forwarded alert that is not a valid alert", "alert")
            targets.extend(self.join.alert(view, key, alert, value["alert"], now))
            return None
        return Rejected(f"unknown kind {str(kind)[:40]!r}", "kind")

    def join_alert_message(self, msg: Any, step: StepResult, view: JoinView, targets: list[Target]) -> None:
        """One message of ``ids-alerts``: validate, join the keys held here, forward the others."""
        now, names, tally = step.now, self.names, step.tally
        tally.saw.add((msg.topic, msg.partition))
        result = self.decode(msg.value, now)
        if isinstance(result, Rejected):
            step.dead_letter(names.dead_letters, msg, result)
            return
        alert: Event = result
        tally.count(tally.events_in, (msg.topic, alert.type))
        if alert.type != "alert":
            step.dead_letter(names.dead_letters, msg,
                             Rejected(f"expected an alert on this topic, got {alert.type!r}", "type"))
            return
        body = alert.raw if alert.raw is not None else orjson.loads(msg.value)
        join = self.join
        targets.extend(join.direct(alert))
        for key in join.keys_of(alert):
            if self.join_partition_of(key) == msg.partition:
                targets.extend(join.alert(view, key, alert, body, now))
            else:
                k = key.encode()
                step.records.append((names.sightings, k, self.sealer.seal(names.sightings, k, orjson.dumps(
                    {"kind": "alert", "alert": body, "ts": alert.ts, "received": now})), None))

    def deliver_targets(self, targets: list[Target], step: StepResult) -> list[Output]:
        """Decide the targets whose users live on this worker; send the others to their partition."""
        now, names, records = step.now, self.names, step.records
        local: dict[int, list[Event]] = {}
        for alert, user, session, via in resolve_targets(targets):
            if self.owns_user(user):
                local.setdefault(id(alert), []).append(alert.targeted(user, session))
            else:
                env = {"kind": "target", "user": user, "session": session, "alert": alert.raw, "via": via}
                k = user.encode()
                records.append((names.user_requests, k,
                                self.sealer.seal(names.user_requests, k, orjson.dumps(env)), None))
        outputs: list[Output] = []
        for resolved in local.values():
            n_out = len(outputs)
            try:
                outputs.extend(self.engine.handle_alert(resolved, now))
            except Exception as exc:  # this alert only; the others of the batch are decided
                del outputs[n_out:]
                step.fault_record(names.dead_letters, "ids-join", exc, safe_dumps(
                    {"alert": resolved[0].raw, "targets": [[e.user, e.session] for e in resolved]}))
                for e in resolved:
                    self.repair(e.user, now, outputs, step.touched)
            for e in resolved:
                step.touched.append(e.user)
        return outputs

    def expire_join(self, data: MutableMapping[str, dict], step: StepResult) -> None:
        """Keys of the IDS join that no alert can meet any more leave it: their tombstones go in
        the step's ``join_state`` (a slice of the keys held per step, recovered ones too)."""
        try:
            view = JoinView(data)
            if self.join.expire(view, step.now, owns=self.owns_join_key, limit=2000):
                step.join_state = view.touched
        except Exception as exc:  # nothing lost: the next sweep looks at every key again
            step.fault_record(self.names.dead_letters, "ids-join", exc, b"join expiry")

    # the attributes the mixin reads (set by StepContext)
    engine: Any
    names: Any
    sealer: Any
    join: Any
    max_skew_s: float
    decode: Any
    repair: Any
    owns_user: Any
    owns_join_key: Any
    join_partition_of: Any
