"""``lapse produce``: put a file of events on lapse's input topics, optionally paced and re-timed."""

from __future__ import annotations

import asyncio
import sys
import time

import click
import orjson

VENDOR_FORMATS = ("okta", "keycloak", "suricata", "cloudtrail")


def route(event: dict) -> tuple[str, str]:
    """(topic name without prefix, key) of a canonical event: users' events by user, alerts by IP.

    >>> route({"type": "activity", "user": "ann"})
    ('activity', 'ann')
    >>> route({"type": "alert", "src_ip": "192.0.2.1"})
    ('ids-alerts', '192.0.2.1')
    """
    kind = event.get("type")
    if kind == "alert":
        return "ids-alerts", str(event.get("src_ip") or event.get("dest_ip") or event.get("user") or "")
    return ("activity" if kind == "activity" else "identity"), str(event.get("user") or "")


async def _produce(path: str, fmt: str, rate: float, retime: bool) -> tuple[int, float]:
    from aiokafka import AIOKafkaProducer

    from streams.config import Settings

    settings = Settings.load()
    producer = AIOKafkaProducer(**settings.kafka_kwargs(), linger_ms=5, max_request_size=2 * 1024 * 1024)
    await producer.start()
    sent = 0
    t0 = time.time()
    try:
        stream = sys.stdin.buffer if path == "-" else open(path, "rb")
        futs = []
        for line in stream:
            line = line.strip()
            if not line:
                continue
            if fmt == "canonical":
                try:
                    event = orjson.loads(line)
                except orjson.JSONDecodeError:
                    event = None
                if isinstance(event, dict):
                    if retime:
                        event["ts"] = time.time()
                        line = orjson.dumps(event)
                    topic, key = route(event)
                else:  # the worker dead-letters it, with the reason
                    topic, key = "identity", ""
            else:
                topic, key = f"raw.{fmt}", ""
            futs.append(await producer.send(settings.topic(topic), key=key.encode() or None, value=line))
            sent += 1
            if rate > 0:
                delay = t0 + sent / rate - time.time()
                if delay > 0:
                    await asyncio.sleep(delay)
            if len(futs) >= 5000:
                await asyncio.gather(*futs)
                futs.clear()
        await asyncio.gather(*futs)
    finally:
        await producer.stop()
    return sent, time.time() - t0


@click.command("produce")
@click.argument("path")
@click.option("--format", "fmt", type=click.Choice(("canonical",) + VENDOR_FORMATS), default="canonical",
              show_default=True, help="canonical events go to identity/activity/ids-alerts; vendor records to raw.<format>")
@click.option("--rate", type=float, default=0.0, help="events per second (0: as fast as possible)")
@click.option("--retime", is_flag=True, help="stamp canonical events with the current time as they are sent")
def produce_cmd(path: str, fmt: str, rate: float, retime: bool) -> None:
    """Produce the events of PATH ('-' = stdin, one per line) to lapse's input topics."""
    n, dt = asyncio.run(_produce(path, fmt, rate, retime))
    click.echo(f"produced {n} events in {dt:.1f}s ({n / dt if dt else 0:,.0f}/s)", err=True)
