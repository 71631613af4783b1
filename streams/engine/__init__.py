"""The lapse session engine: pure, deterministic, clock injected (see docs/contracts.md)."""

from .decisions import Output, audit, decision, rfc3339, stable_id
from .deadlines import DeadlineIndex
from .durations import DurationError, format_duration, parse_duration
from .engine import Engine, Replay
from .join import IdsJoin, JoinView, SightingGate
from .events import Event, InvalidEvent, parse_event, parse_ts
from .policy import PRESETS, Limits, Policy, PolicyError, Rule, default_policy, load_policy, loads_policy, policy_from_dict
from .scoring import Score, Scorer
from .state import SessionState, UserState

__all__ = [
    "DeadlineIndex", "DurationError", "Engine", "Event", "IdsJoin", "InvalidEvent", "JoinView", "Limits", "Output", "PRESETS", "Policy",
    "PolicyError", "Replay", "Rule", "Score", "Scorer", "SessionState", "SightingGate", "UserState", "audit",
    "decision", "default_policy", "format_duration", "load_policy", "loads_policy", "parse_duration", "parse_event",
    "parse_ts", "policy_from_dict", "rfc3339", "stable_id",
]
