"""The two ways an adapter declines a record.

``AdapterError`` means the record cannot be mapped: it goes to the dead-letter topic with its raw
bytes, the ``reason`` and the ``field`` (a dotted path into the vendor record, ``$`` for the record
as a whole). ``Skipped`` means the record is well formed but of a kind lapse deliberately ignores
(a Suricata ``flow`` record, an Okta policy evaluation): it is counted, never dead-lettered.
"""

from __future__ import annotations

__all__ = ["AdapterError", "Skipped"]


class AdapterError(ValueError):
    """A record that cannot be mapped to canonical events.

    Parameters
    ----------
    reason : str
        What is wrong, in a few words (``"missing"``, ``"not a string"``, ...).
    field : str
        Dotted path of the offending field in the vendor record; ``"$"`` is the whole record.

    Examples
    --------
    >>> err = AdapterError("missing", "client.ipAddress")
    >>> str(err), err.field, err.reason
    ('client.ipAddress: missing', 'client.ipAddress', 'missing')
    """

    def __init__(self, reason: str, field: str = "$") -> None:
        super().__init__(f"{field}: {reason}")
        self.reason = reason
        self.field = field


class Skipped(Exception):
    """A well-formed record of a kind that is deliberately ignored (counted, not dead-lettered).

    Parameters
    ----------
    kind : str
        ``"<format>:<vendor type>"``, the key under which skips are counted.

    Examples
    --------
    >>> s = Skipped("suricata:flow")
    >>> s.kind, str(s)
    ('suricata:flow', 'skipped suricata:flow')
    """

    def __init__(self, kind: str) -> None:
        super().__init__(f"skipped {kind}")
        self.kind = kind
