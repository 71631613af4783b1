"""Session policy: TOML validated on load, strictest-wins limits, presets from published figures.

A session's limits are the smallest ``idle`` and ``absolute`` over ``[defaults]`` and every rule
whose conditions all hold. Static conditions (``roles``, ``network``, ``channel``, ``app``, ``aal``)
are matched once per attribute tuple and cached; activity conditions (``privileged``,
``bytes_over``, ``rate_over``, ``risk``) are evaluated at a given time on the session itself.

One concept per module, each importing only those before it:

- :mod:`.presets`: the compliance presets (published limits and their citations);
- :mod:`.model`: the policy data model (rules, limits, the ``[ids]``/``[adaptive]``/``[activity]``
  tables, :class:`PolicyError`, what a policy reads from a session);
- :mod:`.evaluate`: :class:`Policy`, matching rules and computing a session's limits;
- :mod:`.load`: reading and validating a policy (TOML, file, dict, the shipped default).

Everything ``streams.engine.policy`` offered as a single module is re-exported here, so imports
from ``streams.engine.policy`` are unchanged.
"""

from .presets import PRESETS, Preset
from .model import (
    INF,
    RATE_WINDOW_S,
    RISK_BANDS,
    ActivityPolicy,
    AdaptivePolicy,
    IdsPolicy,
    Limits,
    PolicyError,
    Rule,
    SessionLike,
)
from .evaluate import Policy
from .load import default_policy, load_policy, loads_policy, policy_from_dict

__all__ = [
    "PRESETS",
    "Preset",
    "Policy",
    "PolicyError",
    "Rule",
    "Limits",
    "IdsPolicy",
    "AdaptivePolicy",
    "ActivityPolicy",
    "load_policy",
    "loads_policy",
    "policy_from_dict",
    "default_policy",
    "RATE_WINDOW_S",
]
