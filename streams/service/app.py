"""The Faust shell around the engine: topics, tables, agents, the expiry timer, web views.

The engine decides; Faust moves the data and keeps the state durable. Everything a worker runs is
declared once, in ``Service.__init__``. What each batch and tick decides is a step of
streams/service/steps/ (messages and ``now`` in; outputs, records, touched state out); this module
hands batches to the steps, applies their results and takes them through the commit order.

Dataflow (each arrow is a Kafka topic)::

    identity, activity ──► user agent ──► revocations (keyed by session), audit (keyed by user)
                        (request agent: the same, for user-requests, in a lane of its own)
          ▲                   │  ▲
          │                   │  └── user-requests (alerts resolved to a user of another worker,
          │                   │                     admin requests, events on the wrong partition)
          │                   └────► sightings (<ip>, session:<id> -> user, session), only for
          │                          keys another worker holds: the others go to the join's
          │                          table in the user's own step
    ids-alerts ──► IDS join (ids-alerts + sightings, co-partitioned) ──► revocations, audit
                   (decides at once for users on this worker; others go through user-requests)

Commit order of one step (a batch of events, an expiry tick, an IDS-join batch, a policy switch),
the invariant that makes delivery at-least-once and never lossy (streams/service/pipeline/commit.py):

1. **decide** — the engine handles the step's events synchronously, mutating state in memory; the
   state of every user (and join key) the step touched is serialized at once;
2. **produce** — decisions, audit records, sightings, forwards and dead letters are submitted to
   the batch sender (streams/service/pipeline/outbox.py), which hands them to aiokafka in step order;
3. **await** — the committer waits until the broker acknowledged every one of them, while the
   worker already decides the next step;
4. **changelog** — only then are the step's serialized states handed to the producer (for
   tickets in the order the steps decided, so the changelog never runs ahead of a decision);
5. **offsets** — the step's input messages are acked; Faust's commit flushes the producer (so the
   changelog is durable) before it commits the offsets of acked events.

A crash before 3 re-processes the step and re-decides the same decisions (same ids). A crash
between 3 and 5 re-processes events against state that already saw them: the engine re-issues
the same ids. A decision is never lost; a duplicate always carries the id of the original. A
step whose records fail stops the committer and crashes the worker (restart from the last commit).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import faust
import orjson
from faust.types import TP

from streams.config import Settings
from streams.engine import Engine, Output, parse_ts
from streams.engine.join import home_key
from streams.service.state import codecs
from streams.service.compat import internals, transport
from streams.service.pipeline.sealed import Sealer, metric_labels
from streams.service.pipeline.catchup import CatchUp
from streams.service.pipeline.commit import Committer, Ticket
from streams.service.compat.gcpause import GcPauses
from streams.service.pipeline.inbox import ClearOnSuspend, Inbox
from streams.service.pipeline.interval import CommitInterval
from streams.service.web.metrics import Metrics
from streams.service.pipeline.outbox import BatchSender, Record
from streams.service.state import recovery as batched_recovery
from streams.service.pipeline.partitioning import partition_for
from streams.service.state.store import TableStore, in_memory_dict
from streams.service.steps import StepResult, Steps, TopicNames, fault_letter, safe_dumps

log = logging.getLogger("lapse.service")
INF = float("inf")

#: the pipeline's tunables (batch size and fill wait, linger, steps in flight, commit interval,
#: catch-up wait, live objects, inbox size) are Settings (streams/config.py, docs/service.md). A
#: batch holds the event loop while it is decided, so its size bounds how long an IDS alert can
#: wait behind it (each hop of the alert's path can wait for one batch); with steps pipelined,
#: 100 costs no throughput. Faust commits acked offsets every second, so the commit interval is
#: at most the input a crash re-reads. The inbox is large, because a full agent queue during table
#: recovery blocks the delivery of changelog records and stalls recovery (faust-streaming #74).
#: Faust agents whose topics go through an inbox receive nothing in normal operation; Faust's
#: take_events wakes every ``within`` even when idle (a 2 ms window cost ~15 % of the CPU during
#: table recovery), so they wait long
IDLE_AGENT_WITHIN_S = 1.0
#: vendor formats read from ``raw.<format>`` topics (streams/adapters/)
RAW_FORMATS = ("okta", "keycloak", "suricata", "cloudtrail")
#: expiry timer tick: well inside the 1 s a timeout may be late
TICK_S = 0.25


def faust_broker_urls(bootstrap: str) -> list[str]:
    """``"a:9092,b:9092"`` -> ``["lapse://a:9092", "lapse://b:9092"]`` (Faust's aiokafka transport
    with lapse's cheaper message delivery: see ``streams.service.compat.transport``).

    >>> faust_broker_urls("127.0.0.1:9092, 10.0.0.2:9093")
    ['lapse://127.0.0.1:9092', 'lapse://10.0.0.2:9093']
    """
    transport.register()
    return [f"{transport.SCHEME}://{b.strip()}" for b in bootstrap.split(",") if b.strip()]


def broker_credentials(settings: Settings) -> Any:
    if settings.security_protocol == "PLAINTEXT":
        return None
    ssl_context = None
    if settings.security_protocol.endswith("SSL"):
        from aiokafka.helpers import create_ssl_context

        ssl_context = create_ssl_context(cafile=settings.ssl_cafile)
    if settings.security_protocol.startswith("SASL"):
        return faust.SASLCredentials(username=settings.sasl_username, password=settings.sasl_password,
                                     ssl_context=ssl_context, mechanism=settings.sasl_mechanism)
    return faust.SSLCredentials(ssl_context)


class Service:
    """One lapse worker: a Faust app with its topics, tables, agents, timer and web views.

    Parameters
    ----------
    settings : Settings
        Broker, topics, web server.
    engine_factory : callable
        ``engine_factory(store) -> Engine``; the store is the changelog-backed user table.
    encode_decision : callable
        ``encode_decision(decision: dict) -> bytes``: the revocations-topic message (signed SET).
    clock : callable
        Wall clock (seconds); injected so tests and benchmarks can read it.
    """

    def __init__(self, settings: Settings, engine_factory: Callable[[TableStore], Engine],
                 encode_decision: Callable[[dict], bytes], *, clock: Callable[[], float] = time.time,
                 max_skew_s: float | None = None,
                 heartbeat: Callable[[float, int], tuple[bytes, bytes]] | None = None,
                 sealer: Sealer | None = None) -> None:
        if not callable(engine_factory):
            raise TypeError("Service: engine_factory must be callable(store) -> Engine")
        if not callable(encode_decision):
            raise TypeError("Service: encode_decision must be callable(decision) -> bytes")
        internals.self_check()  # an upgrade of Faust or aiokafka that renamed an internal fails here
        self.settings = settings
        self.clock = clock
        #: seals and opens the internal records (user-requests, policy, model snapshots): one key
        #: shared by every worker (LAPSE_INTERNAL_KEY, else derived from the signing key)
        self.sealer = sealer if sealer is not None else Sealer.from_settings(settings)
        max_skew_s = settings.max_skew_s if max_skew_s is None else max_skew_s
        self._invalid_counters: dict[tuple[str, str], Any] = {}  # bounded: topics x FIELDS
        self._held_dl: list[Record] = []  # dead letters waiting for the next commit point
        self.encode_decision = encode_decision
        if heartbeat is not None and not callable(heartbeat):
            raise TypeError("Service: heartbeat must be callable(now, partition) -> (key, value)")
        self.heartbeat = heartbeat
        self.metrics = Metrics()
        self.gc_pauses = GcPauses(self.metrics.gc_pause, freeze=settings.gc_freeze)
        self.ready = False
        self.n_partitions = settings.partitions
        self._assigned_user_partitions: set[int] = set()
        self._assigned_join_partitions: set[int] | None = None  # None: the user partitions' numbers
        self._partition_cache: dict[str, int] = {}
        #: held by a policy switch from its decision to its commit (streams/service/web/policy_publish.py).
        #: The other steps need no lock: each decides synchronously and submits its ticket before
        #: it yields, and the committer takes tickets in that order (streams/service/pipeline/commit.py)
        self.deciding = asyncio.Lock()

        app = self.app = faust.App(
            settings.app_id,
            broker=faust_broker_urls(settings.bootstrap),
            broker_credentials=broker_credentials(settings),
            store=settings.store,
            datadir=settings.data_dir,
            topic_partitions=settings.partitions,
            topic_replication_factor=1,
            topic_allow_declare=True,
            processing_guarantee="at_least_once",
            consumer_auto_offset_reset="earliest",
            producer_acks=-1,
            producer_linger_ms=settings.linger_ms,
            producer_max_batch_size=512 * 1024,
            producer_max_request_size=2 * 1024 * 1024,
            broker_commit_interval=1.0,
            stream_buffer_maxsize=settings.stream_buffer,
            web_enabled=True,
            # Faust's own views would show any table's content (who used which IP) without a token
            web_router_enabled=False,
            web_tables_enabled=False,
            web_graph_enabled=False,
            web_stats_enabled=False,
            web_metrics_enabled=False,
            web_bind=settings.web_host,
            web_host=settings.web_host,
            web_port=settings.web_port,
            key_serializer=codecs.KEY,
            value_serializer="raw",
            table_standby_replicas=0,
            broker_session_timeout=settings.session_timeout_s,
            broker_heartbeat_interval=max(1, settings.session_timeout_s // 4),
        )
        t = settings.topic
        raw = dict(key_serializer=codecs.KEY, value_serializer="raw")
        self.user_inputs = app.topic(t("identity"), t("activity"), **raw)
        # their messages skip Faust's streams: the consumer puts them in this inbox, one task takes
        # them out in batches (streams/service/pipeline/inbox.py); the agent below keeps them subscribed
        self.user_inbox = Inbox(settings.stream_buffer)
        app.lapse_inboxes = {t("identity"): self.user_inbox, t("activity"): self.user_inbox}
        self._inbox_clearers = [ClearOnSuspend(self.user_inbox, app.flow_control)]  # on revoke, not on resume
        # resolved IDS alerts and admin requests: a lane of their own, so they never queue behind a
        # backlog of activity (same partitions and state; Faust co-partitions topics of equal size)
        self.requests_in = app.topic(t("user-requests"), **raw)
        self.requests_inbox = Inbox(settings.stream_buffer)
        app.lapse_inboxes[t("user-requests")] = self.requests_inbox
        self._inbox_clearers.append(ClearOnSuspend(self.requests_inbox, app.flow_control))
        # the IDS join reads alerts and sightings in one agent (co-partitioned: see _join_agent)
        self.join_in = app.topic(t("ids-alerts"), t("sightings"), **raw)
        self.join_inbox = Inbox(settings.stream_buffer)  # the same for the join's topics (see _join_inbox_task)
        app.lapse_inboxes.update({t("ids-alerts"): self.join_inbox, t("sightings"): self.join_inbox})
        self._inbox_clearers.append(ClearOnSuspend(self.join_inbox, app.flow_control))
        self.names = TopicNames(settings)

        # use_partitioner: a key's changelog partition is the one Kafka's default partitioner gives
        # it, which is also its input partition — so timer-driven writes (no current event) land
        # where recovery will look for them.
        rocks = settings.store == "rocksdb://"
        options = {"driver": "rocksdict"} if rocks else None
        self.users = _table(app, "users", settings.partitions, codecs.USER_STATE, options)
        self.sightings = _table(app, "sightings", settings.partitions, codecs.JSON, options)
        # the changelogs are read back in batches, not one event per turn of the event loop
        batched_recovery.install(app)

        self._changelog_name = self.users.changelog_topic.get_topic_name()
        self._sightings_changelog_name = self.sightings.changelog_topic.get_topic_name()
        #: the live objects over each table: the memory store's own dict, or LiveState over RocksDB
        self._live: dict[str, Any] = {}
        if rocks:
            self._live = {
                self._changelog_name: _live_state(self.users, self.partition_of, _decode_user_state, settings.live_max,
                                                  lambda: sorted(self._assigned_user_partitions)),
                self._sightings_changelog_name: _live_state(self.sightings, self.join_partition_of, orjson.loads,
                                                            settings.live_max, tuple),
            }
            users_read = self._live[self._changelog_name]
            self._sightings_data = self._live[self._sightings_changelog_name]
            #: each changelog's Faust store, whose persisted offsets follow the broker's acks
            self._live_stores = {self._changelog_name: self.users.data,
                                 self._sightings_changelog_name: self.sightings.data}
        else:
            users_read = None
            self._sightings_data = in_memory_dict(self.sightings)
        # steps 2-5 of the commit order: records go out in batches, tickets commit in order
        self.sender = BatchSender(lambda: internals.ensure_producer(app))
        self.committer = Committer(self.sender, lambda msgs: app.consumer.ack_batch(msgs), max_pending=settings.commit_pending,
                                   on_changelog=self._changelog_handed_over if rocks else None)
        self.interval = CommitInterval(settings.commit_interval_s)
        self._join_dirty: dict[str, dict] = {}  # join keys changed since the last commit point
        self.catchup = CatchUp(settings.catchup_max_s)
        self._input_at = 0.0  # monotonic time input was last decided (the timer commits when quiet)
        #: commits the consumer's acked offsets to the broker (Faust also does so periodically)
        self.commit_offsets: Callable[[], Awaitable[Any]] = lambda: app.consumer.commit()
        self._offset_commits: set[asyncio.Future] = set()
        self._input_tps: set[Any] = set()
        #: the name of an essential task that died (the worker then stops: see _essential)
        self.failed: str | None = None
        self._ticked = self._serving_since = time.monotonic()
        app.task(self._essential("sender", self._run_sender))
        app.task(self._essential("committer", self._run_committer))
        # a rebalance makes a commit point and waits for it (transport.Consumer.wait_empty)
        app.lapse_commit_point = self.commit_point
        app.lapse_drained = self.committer.drained
        self.store = TableStore(self.users, owns=self.owns_user, read=users_read)
        self.engine = engine_factory(self.store)

        self.raw_inputs = app.topic(*(t(f"raw.{fmt}") for fmt in RAW_FORMATS), **raw)
        #: the steps (streams/service/steps/): what the agents and the timer below decide
        self.steps = Steps(self.engine, self.sealer, self.names, partition_of=self.partition_of,
                           join_partition_of=self.join_partition_of, owns_user=self.owns_user,
                           owns_join_key=self.owns_join_key,
                           raw_format={t(f"raw.{fmt}"): fmt for fmt in RAW_FORMATS},
                           max_skew_s=max_skew_s, max_event_age_s=settings.max_event_age_s,
                           max_record_bytes=settings.max_record_bytes)

        app.agent(self.raw_inputs, name="lapse.adapters")(self._raw_agent)
        app.agent(self.user_inputs, name="lapse.users")(self._user_agent)
        app.task(self._essential("user lane", self._user_inbox_task))
        app.agent(self.requests_in, name="lapse.requests")(self._request_agent)
        app.task(self._essential("request lane", self._request_inbox_task))
        app.agent(self.join_in, name="lapse.ids-join")(self._join_agent)
        app.task(self._essential("ids-join lane", self._join_inbox_task))
        app.timer(TICK_S, name="lapse.expiry")(self._expiry_tick)
        if heartbeat is not None:
            app.timer(settings.heartbeat_s, name="lapse.heartbeat")(self._heartbeat_tick)
        self._snapshots = False  # the scorer can snapshot: a timer seals and sends them
        self._snapshot_restored = False
        if getattr(self.engine, "scorer", None) is not None and hasattr(self.engine.scorer, "snapshot"):
            from streams.service.state import snapshots

            self._snapshots = True
            app.timer(snapshots.SNAPSHOT_EVERY_S, name="lapse.model-snapshot")(self._snapshot_tick)
            app.task(self._restore_model)  # at worker start, outside the rebalance callbacks
        app.on_partitions_assigned.connect(self._on_assigned)
        app.on_partitions_revoked.connect(self._on_revoked)
        app.on_rebalance_complete.connect(self._on_rebalance_complete)
        from streams.service.web import health as web

        web.register(self)
        # admin API, dashboard and policy follower (logic in streams/service/web/admin/)
        from streams.service.web import admin

        self.operator = admin.register(self)
        self.steps.admin = self.operator.handle

    def _essential(self, name: str, run: Callable[[], Any]) -> Callable[[], Any]:
        """A task the worker cannot decide without: if it ends, for any reason, while the worker
        runs, the worker crashes (and its supervisor restarts it) rather than live on as a zombie
        whose /health still says ok."""

        async def essential() -> None:
            try:
                await run()
            except asyncio.CancelledError:
                if not self.app.should_stop:
                    self.failed = name
                    log.error("lapse: essential task %s was cancelled while the worker runs; stopping", name)
                    await self.app.crash(RuntimeError(f"lapse: essential task {name} was cancelled"))
                raise
            except BaseException:
                self.failed = name
                log.exception("lapse: essential task %s failed; stopping the worker", name)
                raise  # Faust crashes the app
            if not self.app.should_stop:
                self.failed = name
                log.error("lapse: essential task %s ended while the worker runs; stopping", name)
                await self.app.crash(RuntimeError(f"lapse: essential task {name} ended"))

        essential.__name__ = essential.__qualname__ = f"lapse.{name.replace(' ', '-')}"
        return essential

    def health(self) -> dict[str, Any]:
        """What ``/health`` reports: ``ok`` only while input is being decided.

        Not ok when an essential task died, when the expiry timer has not run for ``stall_s``, or
        when input waits in an inbox and nothing was decided for ``stall_s`` (a committer waiting
        forever on the broker, a lane stuck)."""
        mono = time.monotonic()
        stall_s = self.settings.stall_s
        waiting = len(self.user_inbox) + len(self.requests_inbox) + len(self.join_inbox)
        since = mono - self._input_at if self._input_at else None
        undecided = mono - max(self._input_at, self._serving_since)  # since input was last decided, or serving began
        problems = []
        if self.failed:
            problems.append(f"essential task {self.failed} died")
        if self.ready and mono - self._ticked > stall_s:
            problems.append(f"expiry timer has not run for {mono - self._ticked:.0f}s")
        if waiting and self.serving and undecided > stall_s:
            problems.append(f"{waiting} input messages wait and nothing was decided for {undecided:.0f}s")
        stalled = bool(problems)
        self.metrics.stalled.set(1 if stalled else 0)
        if since is not None:
            self.metrics.since_decided.set(since)
        return {"status": "stalled" if stalled else "ok", "problems": problems, "waiting": waiting,
                "seconds_since_decided": None if since is None else round(since, 3)}

    def internal_topics(self) -> tuple[Any, ...]:
        """Faust's topics for this app that lapse's topic list does not name: the tables' changelogs
        (created up front with the settings Faust would give them; see ``streams.topics.ensure_topics``)."""
        from streams.topics import TopicSpec

        return tuple(TopicSpec(name, "internal", "table key", "a table's changelog", partitions=self.n_partitions,
                               config={"cleanup.policy": "compact"})
                     for name in (self._changelog_name, self._sightings_changelog_name))

    async def _run_sender(self) -> None:
        await self.sender.run()

    async def _run_committer(self) -> None:
        self.gc_pauses.install()  # for as long as the worker runs (lapse_gc_pause_seconds)
        try:
            await self.committer.run()  # raises (and so crashes the worker) if a step was not acknowledged
        finally:
            self.gc_pauses.uninstall()

    # ------------------------------------------------------------------ partitions

    @property
    def serving(self) -> bool:
        """The readiness /ready, /health and the admin overview report: ``ready`` (tables recovered,
        deadline index rebuilt) and Faust's rebalance over, since recovery signals completion before
        Faust seeks the input back to the committed offsets and fetches again."""
        return self.ready and not self.app.rebalancing

    @property
    def partitions(self) -> list[int]:
        """The users' partitions this worker holds now."""
        return sorted(self._assigned_user_partitions)

    def owns_user(self, user: str) -> bool:
        return self.partition_of(user) in self._assigned_user_partitions

    async def _on_assigned(self, app: Any, assigned: set, **kwargs: Any) -> None:
        identity = self.settings.topic("identity")
        self._assigned_user_partitions = {tp.partition for tp in assigned if tp.topic == identity}
        sightings = self.names.sightings
        self._assigned_join_partitions = {tp.partition for tp in assigned if tp.topic == sightings}
        self._input_tps = {tp for tp in assigned if tp.topic in self.app.lapse_inboxes}
        self.ready = False

    async def _on_revoked(self, app: Any, revoked: set, **kwargs: Any) -> None:
        self.ready = False

    async def _on_rebalance_complete(self, app: Any, **kwargs: Any) -> None:
        """Tables are recovered: rebuild the deadline index from the users this worker owns."""
        t0 = time.perf_counter()
        for live in self._live.values():  # RocksDB: recovery updated the databases, which are the truth
            live.drop_clean()
        self.engine.rebuild_deadlines()
        try:  # the input present now is decided before any deadline fires (streams/service/pipeline/catchup.py)
            ends = await self.app.consumer.highwaters(*self._input_tps) if self._input_tps else {}
        except Exception as exc:  # no end offsets: deadlines fire at once, as before catch-up existed
            log.warning("lapse: end offsets of the input unavailable (%r); expiry not held back", exc)
            ends = {}
        self.catchup.start(ends)
        if self.catchup.pending:
            log.info("lapse: deadlines wait until %d input partitions are decided up to their end offsets",
                     self.catchup.pending)
        self.gc_pauses.collect_and_freeze()
        self._serving_since = time.monotonic()
        self.ready = True
        log.info("lapse: deadline index rebuilt over partitions %s in %.3fs",
                 sorted(self._assigned_user_partitions), time.perf_counter() - t0)

    async def _restore_model(self, app: Any = None) -> None:
        """Once per process: the newest verified model snapshot of this app, if any."""
        from streams.service.state import snapshots

        self._snapshot_restored = True
        try:
            blob = await snapshots.load_latest(self.settings, self.settings.app_id, self.sealer, metrics=self.metrics)
            if blob is not None:
                self.engine.scorer.restore(blob)
                log.info("lapse: adaptive model restored from a %d-byte snapshot", len(blob))
        except Exception:  # a bad snapshot must not keep the worker down: it starts a new warm-up
            log.exception("lapse: could not restore the adaptive model; starting a new warm-up")

    async def _snapshot_tick(self) -> None:
        from streams.service.state import snapshots

        if not self.ready or not self._snapshots:
            return
        blob = self.engine.scorer.snapshot()
        topic = self.settings.topic("model-snapshots")
        await self._send(topic, self.settings.app_id,
                         snapshots.seal_snapshot(self.sealer, topic, self.settings.app_id, blob))

    # ------------------------------------------------------------------ agents

    async def _raw_agent(self, stream: Any) -> None:
        """Vendor records -> canonical events on the identity, activity and ids-alerts topics.

        Unmappable records go to dead letters with the adapter's reason and field; deliberately
        ignored types (e.g. Suricata flow records) are counted, not dead-lettered.
        """
        async for batch in stream.take_events(self.settings.batch_max, within=self.settings.batch_within_s):
            await self._await_delivery(self._decide_raw_batch([ev.message for ev in batch]))

    def _decide_raw_batch(self, batch: list[Any]) -> asyncio.Future:
        """A batch of vendor records -> canonical events (and dead letters), submitted; returns
        the sender's future for their delivery (the raw lane awaits it before its acks, so its
        dead letters go with it rather than wait for a commit point)."""
        step = self.steps.adapt_raw(batch, self.clock())
        self._apply(step)
        return self.sender.submit(step.records)

    async def _user_agent(self, stream: Any) -> None:
        """Subscribes identity and activity; their messages arrive through the inbox instead
        (any event that still comes this way is processed the same)."""
        async for batch in stream.take_events(self.settings.batch_max, within=IDLE_AGENT_WITHIN_S):
            await self.process_user_batch([ev.message for ev in batch])

    async def _user_inbox_task(self) -> None:
        """Batches of identity and activity messages, tracked and acked as Faust's streams do:
        Faust's commit covers an offset once it is acked, and a rebalance waits (``wait_empty``)
        for the tracked messages not yet acked.

        Each batch is decided (step 1) and its records submitted (step 2) at once; the committer
        (streams/service/pipeline/commit.py) takes it through steps 3-5 while the next batch is decided, so
        the worker never idles waiting for the broker's acknowledgements.
        """
        await self._lane(self.user_inbox, self.settings.batch_max, self.settings.batch_within_s,
                         self._decide_user_batch, send_now=False)

    async def _lane(self, inbox: Inbox, max_n: int, within: float, decide: Callable[..., Ticket], *,
                    send_now: bool) -> None:
        """One inbox's task: take a batch, track it, decide it (steps 1-2; the committer does 3-5
        and acks it), and yield. ``send_now``: hand the step's records to aiokafka from this task
        (an alert's lane) rather than on the sending task's next turn."""
        consumer = self.app.consumer
        while True:
            await self.committer.room()
            batch = await inbox.take(max_n, within)
            consumer.track_batch(batch)
            decide(batch, ack=True)
            if send_now:
                await self.sender.send_now()
            # with a backlog, take() returns at once: yield, or one task would decide batch after
            # batch while an IDS alert waits (tens of milliseconds under load)
            await asyncio.sleep(0)

    async def _request_agent(self, stream: Any) -> None:
        """Subscribes user-requests; its messages arrive through their inbox instead."""
        async for batch in stream.take_events(500, within=IDLE_AGENT_WITHIN_S):
            await self.process_user_batch([ev.message for ev in batch])

    async def _request_inbox_task(self) -> None:
        """user-requests (alerts resolved to a user of this worker by another worker's IDS join,
        admin requests, forwarded events): taken as they come, like the join's inbox."""
        await self._lane(self.requests_inbox, 500, 0.0, self._decide_user_batch, send_now=True)

    def partition_of(self, user: str) -> int:
        p = self._partition_cache.get(user)
        if p is None:
            if len(self._partition_cache) > 500_000:  # a pure-function cache, safe to drop
                self._partition_cache.clear()
            p = self._partition_cache[user] = partition_for(user.encode(), self.n_partitions)
        return p

    def join_partition_of(self, key: str) -> int:
        """A join key's partition: its IP's (or session's) own, also for its spill records
        (:func:`~streams.engine.join.home_key`)."""
        return self.partition_of(home_key(key))

    async def process_user_batch(self, batch: Iterable[Any]) -> None:
        """The whole commit order for a batch of Kafka messages (Faust ``Message``): returns once
        the batch is committable (its caller, a Faust stream, acks it afterwards)."""
        await self.committer.room()
        await self._committed(self._decide_user_batch(batch, ack=False))

    def _decide_user_batch(self, batch: Iterable[Any], *, ack: bool) -> Ticket:
        """Steps 1-2 for a batch: decide every event, submit the records, return the ticket
        (``ack``: the committer acks the batch's messages after its changelog)."""
        batch = list(batch)
        self._note_input(batch)
        step = self.steps.decide_users(batch, self.clock(), expire=self._caught_up(), join_data=self._sightings_data)
        self.metrics.batch_size.observe(len(batch))
        self._apply(step)
        # ack=False: the caller acks the batch itself once this returns, so it must be a commit point
        return self._stage(step.outputs, step.records, step.now, step.inbound_ts, dead_letters=step.dead_letters,
                           join_state=step.join_state, messages=batch if ack else (), commit=not ack)

    async def _join_agent(self, stream: Any) -> None:
        """The IDS join: IDS alerts meet the sightings of the sessions that used their IPs.

        Sharded like its keys: an IP address (the key IDS alerts arrive with) or ``session:<id>``.
        It reads ``ids-alerts`` and ``sightings`` together; the two topics have the same size, so
        Faust gives partition p of both to the same worker, and an alert keyed by its ``src_ip``
        (adapters and IDS pipelines key alerts so) finds that IP's sightings here, on arrival. Its
        other keys (a ``dest_ip``, a ``session``, a key that is not one of its IPs) are forwarded to
        the sightings topic, which takes them to the partition that holds them.

        Each implicated (user, session) is decided here when the user's partition is on this
        worker too (always, with one worker), in the same step as the join's own state change;
        else it goes to that user's partition through ``user-requests``.

        Table value: ``{"s": [[user, session, ts], ...], "a": [[alert, alert_ts, received], ...]}``.
        The join's rules (streams/engine/join.py, the join Replay runs too): a sighting and an
        alert meet whichever arrives first; an alert waits ``ALERT_GRACE_S`` for sightings that
        travel more slowly; keys nothing can meet any more leave on the expiry tick.
        """
        async for batch in stream.take_events(1000, within=IDLE_AGENT_WITHIN_S):
            ticket = self._decide_join_batch([ev.message for ev in batch], ack=False)
            await self.sender.send_now()  # revocations out now, not on the sending task's next turn
            await self._committed(ticket)

    async def _join_inbox_task(self) -> None:
        """The join's messages, taken from their inbox as they come (no wait for a batch to fill:
        an alert is on its way to a revocation), tracked and acked like the users' inbox."""
        await self._lane(self.join_inbox, 1000, 0.0, self._decide_join_batch, send_now=True)

    def _decide_join_batch(self, batch: list[Any], *, ack: bool) -> Ticket:
        """Steps 1-2 for a batch of ids-alerts and sightings messages (see :meth:`_join_agent`)."""
        self._note_input(batch)
        step = self.steps.decide_join(self._sightings_data, batch, self.clock())
        self._apply(step)
        return self._stage(step.outputs, step.records, step.now, step.inbound_ts, dead_letters=step.dead_letters,
                           join_state=step.join_state, messages=batch if ack else (), commit=not ack)

    def owns_join_key(self, key: str) -> bool:
        parts = self._assigned_join_partitions
        return self.join_partition_of(key) in (self._assigned_user_partitions if parts is None else parts)

    def _apply(self, step: StepResult) -> None:
        """What a step changed that the shell keeps: the touched users' state (for the next
        changelog) and the step's counts (into the metrics). The join's state and the records go
        with the step's ticket (:meth:`_stage`)."""
        touch = self.store.touch
        for user in step.touched:
            touch(user)
        metrics, tally, now = self.metrics, step.tally, step.now
        for topic, partition in tally.saw:
            metrics.saw(topic, partition, now)
        for (topic, etype), k in tally.events_in.items():
            metrics.events_in.labels(topic, etype).inc(k)
        if tally.invalid:
            counters = self._invalid_counters
            for key, k in tally.invalid.items():
                counter = counters.get(key)
                if counter is None:  # prometheus' labels() takes a lock and builds a tuple: once per key
                    counter = counters[key] = metrics.invalid.labels(*key)
                counter.inc(k)
        for stage, k in tally.faults.items():
            metrics.faults.labels(stage).inc(k)
        for (topic, kind), k in tally.skipped.items():
            metrics.skipped.labels(topic, kind).inc(k)
        for topic, reason in tally.forged:
            metrics.forged_records.labels(*metric_labels(topic, reason)).inc()
        if tally.forwarded:
            metrics.forwarded.inc(tally.forwarded)

    # ------------------------------------------------------------------ timer

    async def _heartbeat_tick(self) -> None:
        """A signed heartbeat on every partition of the revocations topic, while this worker
        decides its input: enforcement points that fail closed on a stale feed tell a quiet topic
        from a dead one by them (streams/publish/heartbeat.py)."""
        if not self.serving or self.health()["status"] != "ok":
            return
        now = self.clock()
        records: list[Record] = []
        # every partition the topic has (an operator may have created it with more than ours)
        partitions = sorted(await internals.ensure_producer(self.app).partitions_for(self.names.revocations))
        for p in partitions or range(self.n_partitions):
            key, value = self.heartbeat(now, p)  # type: ignore[misc]
            records.append((self.names.revocations, key, value, p))
        await self._await_delivery(self.sender.submit(records))

    async def _expiry_tick(self) -> None:
        self._ticked = time.monotonic()
        self.gc_pauses.maybe_freeze()  # keeps full collections short (streams/service/compat/gcpause.py)
        if not self.ready:
            return
        await self.committer.room()
        now = self.clock()
        step = self.steps.tick(self._sightings_data, now, expire=self._caught_up())
        self._apply(step)
        quiet = time.monotonic() - self._input_at >= TICK_S
        if step.outputs or step.records or step.join_state or (self.uncommitted() and (self.interval.due() or quiet)):
            # committed in order behind earlier steps; a commit point when one is due, or at once
            # when no input was decided for a tick (holding back then saves nothing), so that state
            # and offsets are committed even when no input arrives
            ticket = self._stage(step.outputs, step.records, now, None, dead_letters=step.dead_letters,
                                 join_state=step.join_state, commit=quiet)
            if quiet and ticket.messages:
                self._commit_offsets_after(ticket)
        self.metrics.live_sessions.set(self.engine.live)  # a counter: no scan of the store

    def _commit_offsets_after(self, ticket: Ticket) -> None:
        """Once ``ticket`` (a commit point taken because the input went quiet) is committed, commit
        the consumer's acked offsets to the broker at once rather than at Faust's next periodic
        commit (up to a second later): a worker stopped then re-reads nothing it already decided,
        and the group's lag reads 0 as soon as the worker is done. Faust lets one commit run at a
        time; a failure here is left to its periodic commit, which retries."""
        async def commit() -> None:
            await asyncio.shield(ticket.done)
            await self.commit_offsets()

        task = asyncio.ensure_future(commit())
        self._offset_commits.add(task)
        task.add_done_callback(self._offset_commit_done)

    def _offset_commit_done(self, task: asyncio.Future) -> None:
        self._offset_commits.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.debug("lapse: offset commit after a quiet commit point failed (the periodic commit retries): %r",
                      task.exception())

    def _caught_up(self) -> bool:
        """Whether deadlines may fire: the input present at assignment is decided (or waited long
        enough for it; streams/service/pipeline/catchup.py)."""
        catchup = self.catchup
        if catchup.waited_s is not None:
            return True
        catchup.committed(internals.committed_offsets(self.app.consumer))
        left = catchup.left()
        if not catchup.done():
            return False
        if left:
            read = internals.read_offsets(self.app.consumer)
            committed = internals.committed_offsets(self.app.consumer)
            log.warning("lapse: input not caught up after %.0fs: %s", catchup.waited_s, ", ".join(
                f"{tp[0]}/{tp[1]} end {end} committed {committed.get(tp)} "
                f"read {read.get(tp)} decided {catchup.last_decided.get(tp)}" for tp, end in left.items()))
        log.info("lapse: caught up with the input present at assignment in %.2fs%s", catchup.waited_s,
                 "" if catchup.waited_s < catchup.max_wait_s else " (stopped waiting: LAPSE_CATCHUP_MAX_S)")
        return True

    def _note_input(self, batch: list[Any]) -> None:
        """A step decides these input messages: the timer's quiet check and catch-up see them."""
        self._input_at = time.monotonic()
        if self.catchup.pending:
            self.catchup.decided(batch)

    def uncommitted(self) -> bool:
        """Whether state or input messages wait for the next commit point."""
        return bool(self.interval.held or self.store.dirty or self._join_dirty or self._held_dl)

    def commit_point(self) -> None:
        """Make the next step a commit point now, if anything waits for one (before a rebalance
        gives partitions away; ``app.lapse_drained`` then waits for it)."""
        if self.uncommitted():
            self._stage([], [], self.clock(), None, commit=True)

    # ------------------------------------------------------------------ publish

    def _stage(self, outputs: list[Output], records: list[Record], now: float, inbound_ts: float | None, *,
               dead_letters: int = 0, messages: Iterable[Any] = (), join_state: dict[str, dict] | None = None,
               commit: bool = False) -> Ticket:
        """Steps 1-2 of the commit order, synchronously (see streams/service/pipeline/commit.py): the
        decisions and audit records join the step's ``records``, which go to the producer; the
        ticket takes them through steps 3-5.

        At a commit point (every ``LAPSE_COMMIT_INTERVAL_S``, or ``commit``: the caller waits for
        the step to be committed) the state touched since the last one is serialized now and the
        ticket also acks every input message held back; other steps' tickets carry neither
        (streams/service/pipeline/interval.py)."""
        metrics = self.metrics
        names = self.names
        for out in outputs:
            try:
                if out.kind == "decision":
                    d = out.value
                    records.append((names.revocations, out.key.encode(), self.encode_decision(d), None))
                    metrics.decisions.labels(d["action"], d["reason"]).inc()
                    if d["reason"] in ("idle_timeout", "absolute_timeout"):
                        metrics.lateness.observe(max(0.0, now - parse_ts(d["at"])))
                    elif inbound_ts:
                        metrics.decision_latency.observe(max(0.0, now - inbound_ts))
                    if d.get("score") is not None:
                        metrics.scores.observe(d["score"])
                    self.store.touch(d.get("user"))
                else:
                    records.append((names.audit, out.key.encode() if out.key is not None else None,
                                    orjson.dumps(out.value), None))
                    metrics.audit.labels(out.value.get("kind", "?")).inc()
                    self.store.touch(out.value.get("user"))
            except Exception as exc:  # an output that cannot be encoded: to dead letters, the rest go out
                records.append(fault_letter(names.dead_letters, "publish", exc, safe_dumps(out.value), now))
                metrics.faults.labels("publish").inc()
                dead_letters += 1
        interval = self.interval
        interval.hold(messages)
        point = interval.due(force=commit)  # a commit point (streams/service/pipeline/interval.py)
        if dead_letters:
            # dead letters wait for the next commit point, whose ticket carries them (so they are
            # acknowledged before any offset covers their records): one produce request for many
            # steps' dead letters, rather than one per step that met a bad record
            dlt = self.names.dead_letters
            self._held_dl.extend(r for r in records if r[0] == dlt)
            records = [r for r in records if r[0] != dlt]
        if point and self._held_dl:
            records.extend(self._held_dl)
            self._held_dl = []
        sent = self.sender.submit(records)                                   # 2. produce
        if join_state:  # visible to the join's next batch now; written at the next commit point
            data = self._sightings_data
            for key, entry in join_state.items():
                if entry is None:  # a key the join let go
                    data.pop(key, None)
                else:
                    data[key] = entry
            self._join_dirty.update(join_state)
        if point:
            changelog = self._changelog_records()                            # (1.) state as decided
            messages = interval.take()
        else:
            changelog, messages = [], ()
        ticket = self.committer.submit(Ticket(sent, changelog, messages))    # 3-5, in order
        if outputs:
            ticket.done.add_done_callback(lambda f: f.cancelled() or f.exception() is not None
                                          or self.operator.note_published(outputs, now))
        return ticket

    def _changelog_records(self) -> list[Record]:
        """The users (and join keys) touched since the last commit point, as the changelog records
        Faust would write: key, codec and the partition Kafka's default partitioner gives the key,
        so Faust's recovery reads them back. The in-memory table takes them now; the changelog
        after step 3."""
        pending, deleted = self.store.drain()
        out: list[Record] = []
        if pending or deleted:
            data = self.store.read
            changelog = self._changelog_name
            limit = self.settings.max_record_bytes
            for user, state in pending.items():
                data[user] = state
                value = state.to_json()
                if len(value) > limit:  # never a record the broker refuses (the commit would fail)
                    value = self.engine.shrink(user, state, limit)
                    self.metrics.faults.labels("state-size").inc()
                    log.warning("lapse: a user's state exceeded %d bytes; older ended sessions forgotten", limit)
                out.append((changelog, user.encode(), value, self.partition_of(user)))
            for user in deleted:
                data.pop(user, None)
                out.append((changelog, user.encode(), None, self.partition_of(user)))
            if self._live:  # RocksDB: kept in memory until written, after step 3
                stage = data.stage
                for user in pending:
                    stage(user)
                for user in deleted:
                    stage(user)
        if self._join_dirty:
            changelog = self._sightings_changelog_name
            limit = self.settings.max_record_bytes
            for key, entry in self._join_dirty.items():
                if entry is None:
                    out.append((changelog, key.encode(), None, self.join_partition_of(key)))
                    continue
                value = orjson.dumps(entry)
                if len(value) > limit and entry.get("a"):  # never a record the broker refuses
                    entry["a"] = entry["a"][-1:]
                    value = orjson.dumps(entry)
                    self.metrics.faults.labels("state-size").inc()
                out.append((changelog, key.encode(), value, self.join_partition_of(key)))
            if self._live:
                for key in self._join_dirty:
                    self._sightings_data.stage(key)
            self._join_dirty = {}
        return out

    def _changelog_handed_over(self, records: list[Record], futures: list[asyncio.Future]) -> None:
        """RocksDB store, step 4: the changelog records go to the local databases (the step's
        decisions are acknowledged), and each partition's persisted offset follows the broker's
        acknowledgements, so a restart recovers only the changelog written after it."""
        by_table: dict[str, list[tuple[bytes, bytes | None, int]]] = {}
        for topic, key, value, partition in records:
            by_table.setdefault(topic, []).append((key, value, partition))  # type: ignore[arg-type]
        for topic, rows in by_table.items():
            self._live[topic].write(rows)
        stores = self._live_stores

        def persisted(fut: asyncio.Future) -> None:
            if fut.cancelled() or fut.exception() is not None:
                return  # the committer fails the worker over it
            meta = fut.result()
            store = stores.get(meta.topic)
            if store is not None:  # a batch's base offset: recovery re-reads the rest of it, harmlessly
                tp = TP(meta.topic, meta.partition)
                if (store.persisted_offset(tp) or -1) < meta.offset:
                    store.set_persisted_offset(tp, meta.offset)

        for fut in futures:
            fut.add_done_callback(persisted)

    async def publish(self, outputs: list[Output], now: float) -> None:
        """A whole step for outputs decided outside the lanes (a policy switch): stage them, and
        return once they are committed."""
        await self._committed(self._stage(outputs, [], now, None, commit=True))

    async def _committed(self, ticket: Ticket) -> None:
        await asyncio.shield(ticket.done)

    async def _send(self, topic: str, key: str | bytes | None, value: bytes | None,
                    partition: int | None = None) -> asyncio.Future:
        """One record outside any step (model snapshots); returns its delivery future."""
        producer = internals.ensure_producer(self.app)
        if isinstance(key, str):
            key = key.encode()
        return await producer.send(topic, value=value, key=key, partition=partition)

    @staticmethod
    async def _await_delivery(submitted: asyncio.Future) -> None:
        futures = await submitted
        if futures:
            await asyncio.gather(*futures)


def _decode_user_state(raw: bytes) -> Any:
    from streams.engine.state import UserState

    return UserState.from_dict(orjson.loads(raw))


def _live_state(table: Any, partition_of: Callable[[str], int], decode: Callable[[bytes], Any], live_max: int,
                partitions: Callable[[], Any]) -> Any:
    """:class:`~streams.service.state.livestate.LiveState` over a table's Faust RocksDB store."""
    from streams.service.state.livestate import LiveState

    store = table.data
    return LiveState(lambda p: internals.db_for_partition(store, p), partition_of, decode, max_live=live_max,
                     partitions=partitions, skip_keys=(store.offset_key,))


def _table(app: faust.App, name: str, partitions: int, value_codec: str, options: dict | None = None) -> Any:
    """A changelog-backed table with our codecs.

    Faust derives a table's serializers from ``key_type``/``value_type`` models; ours are plain
    codecs, set on the table (Faust passes them explicitly when it writes the changelog, and to the
    store it creates lazily) and on the changelog topic that recovery reads.
    """
    table = app.Table(name, partitions=partitions, use_partitioner=True, options=options)
    table.key_serializer = codecs.KEY
    table.value_serializer = value_codec
    # the table registered a changelog topic with the default (json) serializers: replace it (same
    # name) before the worker starts, so recovery decodes with our codecs, and takes their values as
    # they are (codecs.Decoded: no search for a Faust model namespace in every record)
    topic = internals.new_changelog_topic(table)
    topic.schema.update(value_type=codecs.Decoded)
    topic.value_type = codecs.Decoded
    table.changelog_topic = topic
    return table
