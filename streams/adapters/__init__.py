"""Vendor formats to canonical events, at the edge of the service.

Each format has a module with a pure function ``adapt(raw: bytes) -> list[dict]`` that returns
canonical event dicts (docs/engine.md, "Events"), raises :class:`AdapterError` (dead-letter:
reason and field) or :class:`Skipped` (deliberately ignored: counted). :func:`adapt` wraps them for the stream: it never
raises for any input bytes, and tells the caller what to do with the record.

Examples
--------
>>> r = adapt("suricata", b'{"event_type": "dns", "timestamp": "2024-05-01T09:00:00+0000"}')
>>> r.events, r.skipped, r.error
([], 'suricata:dns', None)
>>> r = adapt("canonical", b'not json')
>>> r.error.field, r.error.reason[:13]
('$', 'malformed JSO')
>>> sorted(ADAPTERS)
['canonical', 'cloudtrail', 'keycloak', 'okta', 'suricata']
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from streams.adapters import canonical, cloudtrail, keycloak, okta, suricata
from streams.adapters.errors import AdapterError, Skipped

__all__ = [
    "ADAPTERS",
    "FORMATS",
    "AdaptResult",
    "AdapterError",
    "Skipped",
    "adapt",
    "dead_letter",
]

Adapter = Callable[[bytes], list[dict[str, Any]]]

ADAPTERS: dict[str, Adapter] = {
    "okta": okta.adapt,
    "keycloak": keycloak.adapt,
    "suricata": suricata.adapt,
    "cloudtrail": cloudtrail.adapt,
    "canonical": canonical.adapt,
}
"""Format name (as on the command line and in raw topic names) to its adapter."""

FORMATS: tuple[str, ...] = tuple(ADAPTERS)


@dataclass(frozen=True, slots=True)
class AdaptResult:
    """What became of one raw record: events to forward, a skip to count, or a dead letter.

    Exactly one of the three is meaningful: ``error`` set means dead-letter, ``skipped`` set means
    count and drop, otherwise forward ``events`` (possibly several, e.g. an Okta logout).
    """

    events: list[dict[str, Any]] = field(default_factory=list)
    skipped: str | None = None
    error: AdapterError | None = None

    @property
    def ok(self) -> bool:
        """True when the record mapped (``events`` holds its canonical events)."""
        return self.error is None and self.skipped is None


def adapt(fmt: str, raw: bytes) -> AdaptResult:
    """Run the ``fmt`` adapter on ``raw``; never raises for any input bytes.

    Parameters
    ----------
    fmt : str
        A key of :data:`ADAPTERS`.
    raw : bytes
        The raw record (a Kafka message value, a line of a file).

    Returns
    -------
    AdaptResult

    Raises
    ------
    ValueError
        ``fmt`` is not a known format (a configuration error, not bad input).

    Examples
    --------
    >>> adapt("okta", b'{"eventType": "no.such.type", "published": "2024-05-01T09:00:00Z"}').error.field
    'eventType'
    """
    try:
        adapter = ADAPTERS[fmt]
    except KeyError:
        raise ValueError(f"unknown format {fmt!r}; known: {', '.join(FORMATS)}") from None
    try:
        return AdaptResult(events=adapter(raw))
    except Skipped as skip:
        return AdaptResult(skipped=skip.kind)
    except AdapterError as err:
        return AdaptResult(error=err)
    except Exception as exc:  # noqa: BLE001 - a bug in an adapter must not stop the stream
        return AdaptResult(error=AdapterError(f"adapter failed: {type(exc).__name__}: {exc}"[:300]))


def dead_letter(raw: bytes, error: AdapterError, *, topic: str, partition: int, offset: int,
                at: str) -> dict[str, Any]:
    """The value of a dead-letters-topic message (``docs/contracts.md``).

    Examples
    --------
    >>> dead_letter(b"{", AdapterError("malformed JSON", "$"), topic="raw.okta", partition=0,
    ...             offset=7, at="2024-05-01T09:00:00Z")["raw_b64"]
    'ew=='
    """
    return {
        "reason": error.reason,
        "field": error.field,
        "topic": topic,
        "partition": partition,
        "offset": offset,
        "at": at,
        "raw_b64": base64.b64encode(bytes(raw)).decode("ascii"),
    }
