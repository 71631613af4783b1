"""What every step reads: the engine, the IDS join, the sealer, topic names, partitioning, the
input window around the clock.

Nothing here talks to Kafka or keeps time: the shell passes ``now`` into each step and tells it
which partitions this worker owns through the ``owns_*`` callables.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from streams.config import Settings
from streams.engine import Engine, Event, Output
from streams.engine.join import IdsJoin, SightingGate
from streams.service.pipeline.ingest import Rejected, decode, longest_absolute_s, past_bound
from streams.service.pipeline.sealed import Sealer

log = logging.getLogger("lapse.service")


class TopicNames:
    """Full names of the topics lapse reads and writes (with the configured prefix)."""

    def __init__(self, settings: Settings) -> None:
        t = settings.topic
        self.identity, self.activity, self.ids_alerts = t("identity"), t("activity"), t("ids-alerts")
        self.user_requests, self.sightings = t("user-requests"), t("sightings")
        self.revocations, self.audit, self.dead_letters = t("revocations"), t("audit"), t("dead-letters")


class StepContext:
    """The steps' dependencies.

    Parameters
    ----------
    engine : Engine
        Decides; its store is the changelog-backed user table.
    sealer : Sealer
        Seals the records workers write to their own inputs and opens those they read.
    names : TopicNames
        The topics' full names.
    partition_of, join_partition_of : callable
        A user's partition; a join key's partition.
    owns_user, owns_join_key : callable
        Whether this worker holds a user's (a join key's) partition now.
    raw_format : mapping
        ``raw.<format>`` topic name -> adapter format.
    max_skew_s, max_event_age_s : float
        The input window around ``now`` (streams/service/pipeline/ingest.py); the age bound is
        widened to the policy's longest absolute limit, refreshed when the policy changes.
    max_record_bytes : int
        The largest record the broker takes (the join's table values stay below it).
    """

    def __init__(self, engine: Engine, sealer: Sealer, names: TopicNames, *,
                 partition_of: Callable[[str], int], join_partition_of: Callable[[str], int],
                 owns_user: Callable[[str], bool], owns_join_key: Callable[[str], bool],
                 raw_format: Mapping[str, str], max_skew_s: float, max_event_age_s: float,
                 max_record_bytes: int) -> None:
        if max_skew_s < 0 or max_event_age_s <= 0:
            raise ValueError("StepContext: max_skew_s must be >= 0 and max_event_age_s > 0")
        self.engine = engine
        self.sealer = sealer
        self.names = names
        self.partition_of = partition_of
        self.join_partition_of = join_partition_of
        self.owns_user = owns_user
        self.owns_join_key = owns_join_key
        self.raw_format = dict(raw_format)
        self.max_skew_s = max_skew_s
        self.max_event_age_s = max_event_age_s
        self.max_age_s = max_event_age_s
        self._age_policy: Any = None
        #: the IDS join (streams/engine/join.py, the one Replay runs) and when to tell it a sighting
        self.join = IdsJoin(lambda: self.engine.policy.ids, max_record_bytes=max_record_bytes)
        self.gate = SightingGate(lambda: self.engine.policy.ids.lookback)
        #: the operator's requests (``manual_revoke`` on user-requests): set by the admin API
        self.admin: Callable[[Any, float], list[Output]] | None = None

    def decode(self, raw: bytes | None, now: float) -> Event | Rejected:
        """An input message, inside the window around ``now``: at most ``max_skew_s`` ahead, and
        behind by at most the configured age widened to the policy's longest absolute limit."""
        policy = self.engine.policy
        if policy is not self._age_policy:
            self._age_policy = policy
            self.max_age_s = past_bound(longest_absolute_s(policy), self.max_event_age_s)
        return decode(raw, now, self.max_skew_s, self.max_age_s)

    def repair(self, user: str, now: float, outputs: list[Output], touched: list[str]) -> None:
        """Make a user's state safe again after a fault part-way through one of their records
        (``Engine.repair``: sessions it cannot trust are revoked, fail closed)."""
        if not self.owns_user(user):
            return
        try:
            outputs.extend(self.engine.repair(user, now))
        except Exception:  # the repair itself failed: the user's state goes, its sessions fail closed
            log.exception("lapse: could not repair the state of a user after a fault; dropping it")
            self.engine.store.pop(user, None)
        touched.append(user)
