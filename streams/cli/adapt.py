"""``lapse adapt FORMAT FILE``: convert a file of vendor records to canonical JSONL.

One record per line (blank lines are ignored). Canonical events go to stdout, one JSON object per
line; each reject goes to stderr as ``line N: field: reason``; a summary of counts per canonical
event type, skips per kind and rejects ends stderr. Exit status 0 when the input could be read.
"""

from __future__ import annotations

from collections import Counter
from typing import IO

import click
import orjson

from streams.adapters import ADAPTERS, FORMATS, adapt

__all__ = ["adapt_cmd", "adapt_stream"]


def adapt_stream(fmt: str, lines: IO[bytes], out: IO[bytes], err: IO[str]) -> tuple[Counter[str], Counter[str], int]:
    """Adapt every line of ``lines``; return (events per type, skips per kind, rejects).

    Examples
    --------
    >>> import io
    >>> out, err = io.BytesIO(), io.StringIO()
    >>> adapt_stream("canonical", io.BytesIO(b'{"type":"login","ts":1}\\n[]\\n'), out, err)
    (Counter({'login': 1}), Counter(), 1)
    >>> err.getvalue()
    'line 2: $: not a JSON object (array)\\n'
    """
    kinds: Counter[str] = Counter()
    skips: Counter[str] = Counter()
    rejects = 0
    for number, line in enumerate(lines, 1):
        line = line.rstrip(b"\r\n")
        if not line.strip():
            continue
        result = adapt(fmt, line)
        if result.error is not None:
            rejects += 1
            err.write(f"line {number}: {result.error}\n")
        elif result.skipped is not None:
            skips[result.skipped] += 1
        else:
            for event in result.events:
                kinds[str(event.get("type"))] += 1
                out.write(orjson.dumps(event) + b"\n")
    return kinds, skips, rejects


def _summary(kinds: Counter[str], skips: Counter[str], rejects: int) -> str:
    def listing(counts: Counter[str]) -> str:
        return ", ".join(f"{name} {n}" for name, n in sorted(counts.items())) or "none"

    return (f"adapted {sum(kinds.values())} events ({listing(kinds)}); "
            f"skipped {sum(skips.values())} ({listing(skips)}); rejected {rejects}")


@click.command("adapt")
@click.argument("fmt", metavar="FORMAT", type=click.Choice(FORMATS))
@click.argument("file", type=click.File("rb"))
def adapt_cmd(fmt: str, file: IO[bytes]) -> None:
    """Convert FILE (one FORMAT record per line, - for stdin) to canonical JSONL on stdout.

    Rejects go to stderr with their line number and reason, then a summary of events per type,
    skips per kind and rejects.
    """
    assert fmt in ADAPTERS
    out = click.get_binary_stream("stdout")
    err = click.get_text_stream("stderr")
    kinds, skips, rejects = adapt_stream(fmt, file, out, err)
    out.flush()
    err.write(_summary(kinds, skips, rejects) + "\n")
