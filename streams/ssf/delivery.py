"""Delivery to one target, in order, with capped, jittered retries.

A :class:`Deliverer` takes its target's queue (``store.queue``) from the head, one entry at a
time, and sends it with the target's ``send`` (RFC 8935 push, or an OIDC back-channel logout).
The head is retried until the receiver takes it or refuses it as invalid, so a stream's SETs reach
its receiver in the order they were queued; nothing behind the head is sent first. A delivered
entry is deleted from the database (in small batches: a crash re-sends at most a batch, with the
same bytes, so the same ``jti``).

Outcomes of one POST (:class:`Outcome`):

* ``ok``: 202 (push) / 200, 204 (logout): delivered;
* ``reject``: the receiver says this entry is invalid and always will be (RFC 8935 section 2.4
  ``invalid_request``; a logout endpoint's 400): moved to ``failed`` with the error, next entry;
* ``retry``: anything else (timeouts, refused connections, 5xx, 429 with ``Retry-After``, 401/403
  and RFC 8935 ``authentication_failed`` / ``access_denied`` / ``invalid_key`` /
  ``invalid_issuer`` / ``invalid_audience``, which a configuration change on either side fixes):
  the same entry again after ``min(cap, base * 2**n)``, jittered to between half and all of it.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("lapse.ssf.delivery")

#: how many delivered entries are deleted in one transaction (and so re-sent at most after a crash)
FLUSH_EVERY = 32
FLUSH_AFTER_S = 0.05
HEAD_BATCH = 64
#: a 400 without a usable RFC 8935 error is retried this many times, then failed
MAX_UNEXPLAINED_400 = 5
MAX_RETRY_AFTER_S = 3600.0


@dataclass(frozen=True)
class Outcome:
    kind: str  # ok | reject | retry
    status: int | None = None
    err: str | None = None
    description: str | None = None
    retry_after: float | None = None

    def text(self) -> str:
        s = f"{self.kind} status={self.status}"
        if self.err:
            s += f" err={self.err}"
        if self.description:
            s += f" ({self.description[:200]})"
        return s


def backoff(attempt: int, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Delay before retry number ``attempt`` (1, 2, ...): exponential, capped, jittered.

    >>> r = random.Random(1)
    >>> delays = [backoff(n, 0.5, 4.0, r) for n in range(1, 7)]
    >>> [(lo / 2 <= d <= lo) for d, lo in zip(delays, [0.5, 1.0, 2.0, 4.0, 4.0, 4.0])]
    [True, True, True, True, True, True]
    """
    d = min(cap, base * (2 ** min(attempt - 1, 30)))
    return d / 2 + (rng or random).random() * d / 2


def parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, min(float(value), MAX_RETRY_AFTER_S))
    except ValueError:
        from email.utils import parsedate_to_datetime

        try:
            return max(0.0, min(parsedate_to_datetime(value).timestamp() - time.time(), MAX_RETRY_AFTER_S))
        except (TypeError, ValueError):
            return None


class Deliverer:
    """Sends one target's queue in order. ``active()`` false (a paused stream): only control
    entries go out; a woken deliverer re-reads everything."""

    def __init__(self, target: str, *, db: Callable[..., Awaitable[Any]], store: Any,
                 send: Callable[[str], Awaitable[Outcome]], active: Callable[[], bool],
                 base_s: float, cap_s: float, counters: dict[str, int],
                 on_delivered: Callable[[str, str], None] | None = None) -> None:
        self.target = target
        self.db = db
        self.store = store
        self.send = send
        self.active = active
        self.base_s = base_s
        self.cap_s = cap_s
        self.counters = counters
        self.on_delivered = on_delivered
        self.wake = asyncio.Event()
        self.attempts = 0
        self.last_error: str | None = None
        self.last_ok: float | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"lapse-ssf-deliver:{self.target}")

    async def stop(self) -> None:
        t, self._task = self._task, None
        if t is not None:
            t.cancel()
            try:
                await t
            except asyncio.CancelledError:
                pass

    def poke(self) -> None:
        self.wake.set()

    async def _sleep(self, seconds: float) -> None:
        """Wait ``seconds``, or less when poked (a new endpoint, a status change)."""
        try:
            await asyncio.wait_for(self.wake.wait(), timeout=seconds)
        except asyncio.TimeoutError:
            pass

    async def _run(self) -> None:
        while True:
            try:
                await self._round()
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug must not stop delivery for good
                self.counters["delivery_errors"] = self.counters.get("delivery_errors", 0) + 1
                log.exception("delivery to %s failed; retrying", self.target)
                await asyncio.sleep(1.0)

    async def _round(self) -> None:
        self.wake.clear()
        control_only = not self.active()
        rows = await self.db(self.store.head, self.target, HEAD_BATCH, control_only=control_only)
        if not rows:
            await self.wake.wait()
            return
        done: list[int] = []
        flushed = time.monotonic()
        try:
            for seq, jti, payload, _attempts in rows:
                if not control_only and not self.active():
                    return
                unexplained = 0
                while True:
                    outcome = await self._send(payload)
                    if outcome.kind == "ok":
                        done.append(seq)
                        self.attempts = 0
                        self.last_ok = time.time()
                        self.counters["delivered"] = self.counters.get("delivered", 0) + 1
                        if self.on_delivered is not None:
                            self.on_delivered(self.target, jti)
                        break
                    if outcome.kind == "retry" and outcome.status == 400 and not outcome.err:
                        unexplained += 1
                        if unexplained >= MAX_UNEXPLAINED_400:
                            outcome = Outcome("reject", 400, None, "400 without an RFC 8935 error, "
                                                                   f"{MAX_UNEXPLAINED_400} times")
                    if outcome.kind == "reject":
                        await self._flush(done)
                        await self.db(self.store.fail, self.target, {jti: (outcome.err, outcome.description)})
                        self.counters["rejected"] = self.counters.get("rejected", 0) + 1
                        log.warning("%s refused %s: %s", self.target, jti, outcome.text())
                        break
                    self.attempts += 1
                    self.last_error = outcome.text()
                    self.counters["retries"] = self.counters.get("retries", 0) + 1
                    delay = backoff(self.attempts, self.base_s, self.cap_s)
                    if outcome.retry_after is not None:
                        delay = max(delay, outcome.retry_after)
                    if self.attempts in (1, 5) or self.attempts % 20 == 0:
                        log.warning("%s: %s; retry %d in %.2fs", self.target, outcome.text(), self.attempts, delay)
                    await self._flush(done)
                    flushed = time.monotonic()
                    self.wake.clear()
                    await self._sleep(delay)
                    if not control_only and not self.active():
                        return
                if len(done) >= FLUSH_EVERY or time.monotonic() - flushed > FLUSH_AFTER_S:
                    await self._flush(done)
                    flushed = time.monotonic()
        finally:
            await self._flush(done)

    async def _flush(self, done: list[int]) -> None:
        if done:
            seqs = list(done)
            done.clear()
            await self.db(self.store.delete, seqs)

    async def _send(self, payload: str) -> Outcome:
        try:
            return await self.send(payload)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # connection refused, reset, TLS, timeout...
            return Outcome("retry", None, None, f"{type(exc).__name__}: {exc}"[:300])


async def read_error(resp: Any) -> tuple[str | None, str | None]:
    """The RFC 8935 section 2.3 error of a response: ``{"err": ..., "description": ...}``."""
    try:
        body = await resp.read()
        if len(body) > 64 * 1024:
            return None, "oversized error body"
        import json

        doc = json.loads(body)
    except Exception:
        return None, None
    if not isinstance(doc, dict):
        return None, None
    err = doc.get("err")
    desc = doc.get("description")
    return (err if isinstance(err, str) else None), (desc if isinstance(desc, str) else None)


#: RFC 8935 section 2.4 errors after which the same SET will never be accepted
PERMANENT_ERRORS = frozenset({"invalid_request"})
KNOWN_ERRORS = frozenset({"invalid_request", "invalid_key", "invalid_issuer", "invalid_audience",
                          "authentication_failed", "access_denied"})


def push_outcome(status: int, err: str | None, description: str | None, retry_after: str | None) -> Outcome:
    """Classify an RFC 8935 push response.

    >>> push_outcome(202, None, None, None).kind, push_outcome(400, "invalid_request", "x", None).kind
    ('ok', 'reject')
    >>> push_outcome(400, "invalid_key", None, None).kind, push_outcome(503, None, None, "7").retry_after
    ('retry', 7.0)
    """
    if 200 <= status < 300:
        return Outcome("ok", status)
    if status == 400 and err in PERMANENT_ERRORS:
        return Outcome("reject", status, err, description)
    if status == 413:
        return Outcome("reject", status, "invalid_request", "payload too large")
    if status == 400 and err not in KNOWN_ERRORS:
        err = None
    return Outcome("retry", status, err, description, parse_retry_after(retry_after))
