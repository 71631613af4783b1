"""Assemble a worker from settings: policy, signing key, scorer, engine, Faust service."""

from __future__ import annotations

import time
from collections.abc import Callable

from streams.config import Settings, default_policy_path
from streams.engine import Engine, load_policy
from streams.service.app import Service




def make_scorer(policy):
    """The adaptive scorer when the policy enables it (``models.scorer.scorer_for``, the one
    factory every entry point uses). ``models/`` is imported only then; a policy that enables
    ``[adaptive]`` where the model cannot load is refused rather than run without it."""
    if not getattr(getattr(policy, "adaptive", None), "enabled", False):
        return None
    try:
        from models.scorer import scorer_for
    except ImportError as exc:
        raise RuntimeError(f"the policy sets [adaptive] enabled = true but the adaptive model cannot be "
                           f"loaded ({exc}); install the models package or set enabled = false") from exc
    return scorer_for(policy)


def build_service(settings: Settings | None = None, *, clock: Callable[[], float] = time.time) -> Service:
    from streams.publish.keys import load_signing_key
    from streams.publish.set import SetSigner, encode_message

    settings = settings or Settings.load()
    policy = load_policy(settings.policy or default_policy_path())
    signer = SetSigner(load_signing_key(), issuer=settings.set_issuer, audience=settings.set_audience,
                       user_issuer=settings.set_user_issuer)
    scorer = make_scorer(policy)

    def engine_factory(store):
        return Engine(policy, store=store, scorer=scorer, max_sessions=settings.max_sessions_per_user)

    from streams.publish.heartbeat import heartbeat_message

    return Service(settings, engine_factory, lambda decision: encode_message(decision, signer), clock=clock,
                   heartbeat=lambda now, partition: heartbeat_message(signer, now, partition=partition))
