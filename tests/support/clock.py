"""A clock the test advances by hand (``clock.t += 1.0``), injected where code takes ``clock=``."""

from __future__ import annotations


class Clock:
    def __init__(self, t: float = 0.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t
