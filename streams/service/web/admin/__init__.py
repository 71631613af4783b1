"""Operator surface on the worker's web server: admin JSON API, dashboard, policy follower.

A package, one concept per module, so each can be read (and changed) on its own:

* :mod:`.auth` — admin bearer tokens (:class:`Tokens`): configuration, parsing, constant-time check;
* :mod:`.requests` — the manual-revoke request records on ``user-requests`` (:class:`AdminRequest`,
  :func:`revoke_envelope`, :func:`parse_request`, :func:`produce_request`);
* :mod:`.operator` — the per-worker operator state (:class:`Operator`): the service's hooks and
  the reads of this worker's state;
* :mod:`.queries` — audit and timeline queries over the topics (:func:`scope_of`,
  :func:`parse_time`, :func:`scan_topics`, :func:`filter_audit`, :func:`timeline`);
* :mod:`.views` — the HTTP views and the dashboard (:func:`register`), the routes' list.

Imports run one way, with no cycle: :mod:`.requests` uses :mod:`.auth`; :mod:`.operator` and
:mod:`.queries` use the others for type hints only; :mod:`.views` uses them all; only this file
imports :mod:`.views`. The modules import each other by full name, never through this file. This
file only re-exports what the rest of the project imports from ``streams.service.web.admin``
(``register``, ``AdminRequest``, ``parse_request``, ``produce_request``, ``revoke_envelope``,
``parse_time``, ``Tokens``, ...), so callers need not know the split.
"""

from __future__ import annotations

from streams.service.web.admin.auth import MIN_TOKEN_CHARS, Tokens
from streams.service.web.admin.operator import BANDS, RECENT_DECISIONS, Operator
from streams.service.web.admin.queries import (DEFAULT_LIMIT, MAX_SCAN, SCAN_SINCE_MARGIN_S, filter_audit,
                                           parse_time, scan_topics, scope_of, timeline)
from streams.service.web.admin.requests import AUTH_KINDS, AdminRequest, parse_request, produce_request, revoke_envelope
from streams.service.web.admin.views import register

__all__ = [
    "AUTH_KINDS", "BANDS", "DEFAULT_LIMIT", "MAX_SCAN", "MIN_TOKEN_CHARS", "RECENT_DECISIONS",
    "SCAN_SINCE_MARGIN_S", "AdminRequest", "Operator", "Tokens", "filter_audit", "parse_request",
    "parse_time", "produce_request", "register", "revoke_envelope", "scan_topics", "scope_of", "timeline",
]
