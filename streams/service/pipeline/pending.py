"""Work submitted and not yet done: a FIFO that one task drains, with a bound submitters wait on.

Both halves of the worker's output path use one (streams/service/pipeline/outbox.py and commit.py):
submitting never blocks, so a synchronous decide step can submit before it yields (which keeps
submission order equal to decide order), and the deciding side awaits :meth:`Pending.room`
before its next step instead.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Generic, TypeVar

__all__ = ["Pending"]

T = TypeVar("T")


class Pending(Generic[T]):
    """A FIFO of submitted items and two signals: items to take, room to submit.

    Parameters
    ----------
    owner : str
        Named in the error for a bad bound.
    max_pending : int
        From this many items on, :meth:`room` waits.

    Examples
    --------
    >>> async def demo():
    ...     q = Pending("demo", max_pending=2)
    ...     q.push("a"); q.push("b")
    ...     full = not q.has_room()
    ...     first = q.pop()
    ...     await q.room()  # returns at once: one slot is free again
    ...     return full, first, len(q), q.peek()
    >>> asyncio.run(demo())
    (True, 'a', 1, 'b')
    """

    def __init__(self, owner: str, max_pending: int) -> None:
        if max_pending < 1:
            raise ValueError(f"{owner}: max_pending must be >= 1, got {max_pending!r}")
        self.max_pending = max_pending
        self._items: deque[T] = deque()
        self._wakeup = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()

    def __len__(self) -> int:
        return len(self._items)

    def push(self, item: T) -> None:
        """Append ``item`` (never blocks)."""
        self._items.append(item)
        self._wakeup.set()
        if len(self._items) >= self.max_pending:
            self._room.clear()

    def peek(self) -> T:
        return self._items[0]

    def last(self) -> T:
        return self._items[-1]

    def pop(self) -> T:
        item = self._items.popleft()
        if len(self._items) < self.max_pending:
            self._room.set()
        return item

    def has_room(self) -> bool:
        return self._room.is_set()

    async def room(self) -> None:
        """Wait until fewer than ``max_pending`` items are pending."""
        await self._room.wait()

    async def items(self) -> None:
        """Wait until there is an item to take."""
        while not self._items:
            self._wakeup.clear()
            await self._wakeup.wait()
