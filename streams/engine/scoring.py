"""The scorer protocol: how the adaptive model (``models/``) plugs into the engine.

The engine calls ``scorer.process(event, profile, session_state)`` for each identity or activity
event of a user when ``[adaptive] enabled = true``. ``profile`` is the user's
``UserState.profile`` dict, owned by the scorer (the engine stores it, never reads it).
``session_state`` is the :class:`~streams.engine.state.SessionState` (``None`` for events without
a session). The returned score's ``value`` is calibrated to 0..1.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from .events import Event

__all__ = ["Score", "ScoreLike", "Scorer"]


class ScoreLike(Protocol):
    value: float
    evidence: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Score:
    """A calibrated anomaly score and what explains it.

    Examples
    --------
    >>> Score(0.95, {"feature": "new_country"}).value
    0.95
    """

    value: float
    evidence: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Scorer(Protocol):
    def process(self, event: Event, profile: dict[str, Any], session_state: Any) -> ScoreLike | None:
        """Update the profile with ``event`` and return its score, or ``None`` (e.g. warming up)."""
        ...
