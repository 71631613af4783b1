"""Faust codecs for lapse's keys and table values (orjson, compact dicts from the engine)."""

from __future__ import annotations

from typing import Any

import orjson
from faust.serializers import codecs


class Utf8Key(codecs.Codec):
    """Keys are UTF-8 strings on the wire (the user id, ``ip:<addr>``, ``session:<id>``)."""

    def _dumps(self, obj: Any) -> bytes:
        if isinstance(obj, bytes):
            return obj
        return str(obj).encode()

    def _loads(self, s: bytes) -> Any:
        return s.decode() if isinstance(s, (bytes, bytearray)) else s


class OrjsonValue(codecs.Codec):
    """JSON values through orjson (plain dicts and lists)."""

    def _dumps(self, obj: Any) -> bytes:
        return orjson.dumps(obj)

    def _loads(self, s: bytes) -> Any:
        return None if s is None else orjson.loads(s)


class UserStateValue(codecs.Codec):
    """The engine's ``UserState`` as ``to_json()`` (sessions as rows); reads dict sessions too."""

    def _dumps(self, obj: Any) -> bytes:
        return obj.to_json()

    def _loads(self, s: bytes) -> Any:
        if s is None:
            return None
        from streams.engine.state import UserState

        return UserState.from_dict(orjson.loads(s))


class Decoded:
    """The ``value_type`` of our changelog topics: the codec has built the value already.

    With no ``value_type``, Faust looks inside every decoded value for a model namespace
    (``value["__faust"]["ns"]``) and catches the ``KeyError`` or ``TypeError`` that our values
    raise: one exception per changelog record, about a tenth of a restarting worker's time.
    A type that is not a Faust model is handed the value through :meth:`from_data`, which returns
    it as it is; a tombstone (no value) still decodes to ``None``.

    >>> Decoded.from_data({"sessions": {}}, preferred_type=Decoded)
    {'sessions': {}}
    """

    @staticmethod
    def from_data(data: Any, preferred_type: Any = None) -> Any:
        return data


KEY = "lapse-key"
JSON = "lapse-json"
USER_STATE = "lapse-user-state"

codecs.register(KEY, Utf8Key())
codecs.register(JSON, OrjsonValue())
codecs.register(USER_STATE, UserStateValue())
