"""Map raw anomaly scores to a stable ``[0, 1]`` scale.

Raw scores of different detectors live on different scales, and even one detector's scale moves
when traffic changes. The policy's ``step_up_at`` and ``revoke_at`` must keep one meaning, so the
scorer reports a *calibrated* value: how rare a raw score at least this high is among recent
(unflagged) traffic.

:class:`TailCalibrator` keeps the last ``window`` raw scores (a bounded ring buffer) and, every
``refit_every`` observations, re-sorts them. The exceedance probability of a score ``x`` is

* the empirical fraction of the window above ``x`` while ``x`` is inside the bulk;
* above the ``tail_q`` quantile ``u``, an exponential tail fitted to the excesses over ``u``
  (peaks over threshold): ``p(x) = p_u * exp(-(x - u) / beta)`` with ``beta`` the mean excess.
  A window of a few thousand scores cannot resolve a 1-in-a-million rarity; the tail fit can.

The calibrated value is on a log scale: ``value = -log10(p) / decades`` clipped to ``[0, 1]``.
With ``decades = 6``: 0.5 means "1 event in 1,000 is this unusual", 0.9 "1 in 250,000",
1.0 "rarer than 1 in a million". A per-event rate must be this small: a session has tens to
hundreds of events, and a 0.5 % per-session false-revocation budget allows roughly 1 in 20,000
events.

Before ``warmup`` scores have been seen, :meth:`TailCalibrator.value` returns ``None``: no
adaptive decision without a baseline (policy timeouts still apply).

Examples
--------
>>> import random
>>> rng = random.Random(1)
>>> cal = TailCalibrator(window=2000, warmup=100, refit_every=100)
>>> cal.value(3.0) is None
True
>>> for _ in range(5000):
...     cal.learn_one(rng.expovariate(1.0))
>>> cal.value(0.0)
0.0
>>> round(cal.value(math.log(1000)), 1)     # exp(1) tail: P(X > ln 1000) = 1/1000 -> 3 decades
0.5
>>> cal.value(100.0)
1.0
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right

__all__ = ["TailCalibrator"]


class TailCalibrator:
    """Running empirical CDF with an exponential tail, reported on a log-rarity scale.

    Parameters
    ----------
    window
        How many recent raw scores are kept (memory and adaptivity).
    warmup
        No value (``None``) before this many scores were learnt.
    refit_every
        Re-sort the window and refit the tail after this many new scores.
    tail_q
        Quantile above which the exponential tail takes over.
    decades
        Rarity (in powers of ten) that maps to 1.0.
    """

    def __init__(self, window: int = 4096, warmup: int = 1000, refit_every: int = 256,
                 tail_q: float = 0.95, decades: float = 6.0) -> None:
        self.window, self.warmup, self.refit_every = window, warmup, refit_every
        self.tail_q, self.decades = tail_q, decades
        self.buf: list[float] = []
        self.pos = 0
        self.n = 0
        self._sorted: list[float] = []
        self._u = 0.0
        self._p_u = 1.0
        self._beta = 1.0
        self._since = 0

    @property
    def ready(self) -> bool:
        return self.n >= self.warmup

    def learn_one(self, raw: float) -> None:
        if len(self.buf) < self.window:
            self.buf.append(raw)
        else:
            self.buf[self.pos] = raw
            self.pos = (self.pos + 1) % self.window
        self.n += 1
        self._since += 1
        if self._since >= self.refit_every or not self._sorted and (self.n >= 50 or self.n >= self.warmup):
            self._refit()

    def _refit(self) -> None:
        self._since = 0
        # most raw scores are exactly 0 (an event with nothing unusual): only the others are
        # sorted, and the zeros go in as one block, after any negative scores
        buf = self.buf
        s = sorted(filter(None, buf))
        zeros = len(buf) - len(s)
        if zeros:
            i = bisect_left(s, 0.0)
            s[i:i] = [0.0] * zeros
        self._sorted = s
        n = len(s)
        if not n:
            return
        u = s[min(n - 1, int(self.tail_q * n))]
        over = [x - u for x in s[bisect_right(s, u):]]
        self._u = u
        self._p_u = max(len(over), 1) / n
        self._beta = (sum(over) / len(over)) if over else 1.0
        self._beta = max(self._beta, 1e-6)

    def exceedance(self, raw: float) -> float:
        """Estimated probability that a normal event scores at least ``raw``."""
        s = self._sorted
        if not s:
            return 1.0
        if raw <= self._u:
            return max((len(s) - bisect_left(s, raw)) / len(s), self._p_u)
        return self._p_u * math.exp(-(raw - self._u) / self._beta)

    def value(self, raw: float) -> float | None:
        if self.n < self.warmup:
            return None
        p = self.exceedance(raw)
        if p >= 1.0:
            return 0.0
        if p <= 0.0:
            return 1.0
        return min(1.0, max(0.0, -math.log10(p) / self.decades))
