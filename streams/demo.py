"""``lapse demo``: the main job on one machine, end to end, in about a minute.

Starts a worker (a real Faust process on the local broker), feeds a small scripted scenario on wall
-clock time plus simulated background traffic, and prints every revocation as it arrives on the
revocations topic — after verifying its signed Security Event Token, as an enforcement point would.

The scenario (demo policy ``infra/demo-policy.toml``: idle 20 s, admins 15 s):

============  =====================================================  ======================
who           what happens                                           expected decision
============  =====================================================  ======================
alice         admin, active all along                                none
bob           active, then his account is disabled                   revoke / account_event
carol         active; an IDS alert (Suricata severity 1) on her IP   revoke / ids_alert
dave          API client who stops calling                           revoke / idle_timeout
erin          a tab that only auto-refreshes every 4 s               revoke / idle_timeout
frank         two apps under one SSO session; SSO logout             revoke / sso_logout x2
grace         a session used from another country and device         step_up or revoke (anomaly),
                                                                     when the adaptive model is warm
============  =====================================================  ======================
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import click
import orjson

from enforce.wire import HEARTBEAT_KEY

REPO = Path(__file__).resolve().parents[1]
DEMO_POLICY = REPO / "infra" / "demo-policy.toml"


def scenario(run: str, t0: float) -> list[tuple[float, str, dict]]:
    """(offset seconds, topic name, event) of the scripted part, in time order."""
    s = lambda name: f"{run}-{name}"  # noqa: E731  (session ids unique per run)
    geo_de = {"country": "DE", "lat": 52.52, "lon": 13.40, "asn": 3320}
    out: list[tuple[float, str, dict]] = []

    def at(offset: float, topic: str, **event):
        event.setdefault("ts", round(t0 + offset, 3))
        out.append((offset, topic, event))

    logins = [
        ("alice", ["admin"], "web", "10.1.0.11", "laptop-a"),
        ("bob", ["staff"], "web", "10.1.0.12", "laptop-b"),
        ("carol", ["staff"], "mobile", "198.51.100.23", "phone-c"),
        ("dave", ["service"], "api", "10.1.0.14", "svc-d"),
        ("erin", ["staff"], "web", "10.1.0.15", "laptop-e"),
        ("grace", ["staff"], "web", "10.1.0.17", "laptop-g"),
    ]
    for i, (user, roles, channel, ip, device) in enumerate(logins):
        at(0.2 * i, "identity", type="login", user=f"{run}-{user}", session=s(user), roles=roles, channel=channel,
           ip=ip, device=device, aal=2, geo=geo_de, app="portal")
    for app_name in ("mail", "crm"):
        at(1.5, "identity", type="login", user=f"{run}-frank", session=s(f"frank-{app_name}"), roles=["staff"],
           channel="web", ip="10.1.0.16", device="laptop-f", aal=2, geo=geo_de, app=app_name, sso_session=s("frank-sso"))
    # steady human activity
    for k in range(2, 44, 3):
        for user in ("alice", "bob", "carol", "grace"):
            ip = {"alice": "10.1.0.11", "bob": "10.1.0.12", "carol": "198.51.100.23", "grace": "10.1.0.17"}[user]
            at(k + 0.1, "activity", type="activity", user=f"{run}-{user}", session=s(user), ip=ip, action="GET",
               resource="/api/records", bytes=1800, status=200, geo=geo_de)
    for k in range(2, 10, 3):
        at(k + 0.2, "activity", type="activity", user=f"{run}-dave", session=s("dave"), ip="10.1.0.14",
           action="POST", resource="/api/sync", bytes=400, status=200, channel="api")
    for k in range(3, 60, 4):  # erin's forgotten tab: only automatic polling
        at(k + 0.3, "activity", type="activity", user=f"{run}-erin", session=s("erin"), ip="10.1.0.15",
           action="GET", resource="/api/notifications/poll", automatic=True, bytes=120, status=200)
    at(8.0, "ids-alerts", type="alert", severity=1, signature="ET MALWARE Known C2 beacon",
       src_ip="198.51.100.23", dest_ip="203.0.113.9")
    at(12.0, "identity", type="user_disabled", user=f"{run}-bob")
    at(15.0, "identity", type="logout", user=f"{run}-frank", sso_session=s("frank-sso"))
    # grace's session token shows up from another country and device (a hijack)
    for k in range(20, 30, 2):
        at(k + 0.4, "activity", type="activity", user=f"{run}-grace", session=s("grace"), ip="203.0.113.200",
           device="unknown-x", action="GET", resource="/api/export", bytes=900_000, status=200,
           geo={"country": "BR", "lat": -23.55, "lon": -46.63, "asn": 28573})
    out.sort(key=lambda x: x[0])
    return out


def _http_ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=1) as r:
            return r.status == 200
    except Exception:
        return False


def ensure_demo_key(env: dict[str, str]) -> None:
    if env.get("LAPSE_SIGNING_KEY") or env.get("LAPSE_SIGNING_KEY_FILE"):
        return
    from streams.publish.keys import generate_key

    path = REPO / "secrets" / "demo-signing.pem"
    if not path.exists():
        path.parent.mkdir(exist_ok=True)
        generate_key(path)
    env["LAPSE_SIGNING_KEY_FILE"] = str(path)


async def _run(seconds: float, rate: float) -> int:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    from streams.config import Settings
    from streams.publish.keys import build_jwks, load_signing_key
    from streams.publish.verify import SetVerifier
    from streams.topics import create_topics

    env = dict(os.environ)
    ensure_demo_key(env)
    env.setdefault("LAPSE_POLICY", str(DEMO_POLICY))
    run = f"demo{uuid.uuid4().hex[:6]}"
    env.setdefault("LAPSE_APP_ID", f"lapse-{run}")
    settings = Settings.load(env)
    await create_topics(settings)
    key = load_signing_key(env=env)
    verifier = SetVerifier(build_jwks(key), issuer=settings.set_issuer, audience=settings.set_audience)

    import socket

    with socket.socket() as probe:
        if probe.connect_ex((settings.web_host, settings.web_port)) == 0:
            click.echo(f"port {settings.web_port} on {settings.web_host} is taken (another worker?): stop it or set "
                       f"LAPSE_WEB_PORT", err=True)
            return 1
    click.echo(f"lapse demo {run}: starting a worker (web http://{settings.web_host}:{settings.web_port}/dashboard)")
    worker = subprocess.Popen([sys.executable, "-c", "from streams.cli import main; main()", "worker",
                               "--loglevel", "warning"], env=env, cwd=REPO, start_new_session=True)
    try:
        t_start = time.time()
        while not _http_ready(settings.web_port):
            if worker.poll() is not None:
                click.echo(f"the worker exited with status {worker.returncode}", err=True)
                return 1
            if time.time() - t_start > 90:
                click.echo("the worker did not become ready within 90 s", err=True)
                return 1
            await asyncio.sleep(0.5)
        click.echo(f"worker ready after {time.time() - t_start:.1f}s; feeding the scenario for {seconds:.0f}s\n")

        consumer = AIOKafkaConsumer(settings.topic("revocations"), **settings.kafka_kwargs(), auto_offset_reset="latest",
                                    group_id=None)
        producer = AIOKafkaProducer(**settings.kafka_kwargs(), linger_ms=5)
        await consumer.start()
        await producer.start()
        await consumer.seek_to_end()
        t0 = time.time()
        seen: dict[str, dict] = {}

        async def feed() -> None:
            for offset, topic, event in scenario(run, t0):
                delay = t0 + offset - time.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                key = event.get("user") or event.get("src_ip") or ""
                await producer.send(settings.topic(topic), key=key.encode(), value=orjson.dumps(event))

        background_decisions = 0

        async def background() -> None:
            """Simulated users (models/simulate.py) replayed live at ``rate`` events/s, re-timed to now."""
            from models.simulate import iter_events

            sent = 0
            t_bg = time.time()
            for event in iter_events(users=400, hours=6, seed=7, attack_rate=0.05):
                for f in ("user", "session", "sso_session"):
                    if event.get(f):
                        event[f] = f"bg{run}-{event[f]}"
                event["ts"] = time.time()
                topic = "ids-alerts" if event["type"] == "alert" else (
                    "activity" if event["type"] == "activity" else "identity")
                key = event.get("user") or event.get("src_ip") or ""
                await producer.send(settings.topic(topic), key=key.encode(), value=orjson.dumps(event))
                sent += 1
                delay = t_bg + sent / rate - time.time()
                if delay > 0:
                    await asyncio.sleep(delay)

        feeder = asyncio.create_task(feed())
        bg = asyncio.create_task(background()) if rate > 0 else None
        end = t0 + seconds
        while time.time() < end:
            batches = await consumer.getmany(timeout_ms=500)
            for records in batches.values():
                for r in records:
                    if r.key == HEARTBEAT_KEY:  # the worker's liveness beacon, not a decision
                        continue
                    msg = orjson.loads(r.value)
                    d = msg["decision"]
                    if str(d.get("session", "")).startswith(f"bg{run}"):
                        background_decisions += 1
                        continue
                    if not str(d.get("session", "")).startswith(run) or d["id"] in seen:
                        continue
                    try:
                        verifier.verify(msg["set"])
                        sig = "signature ok"
                    except Exception as exc:  # shown, never hidden
                        sig = f"SIGNATURE INVALID: {exc}"
                    seen[d["id"]] = d
                    ev = d.get("evidence") or {}
                    why = ", ".join(f"{k}={v}" for k, v in list(ev.items())[:3])
                    click.echo(f"+{time.time() - t0:5.1f}s  {d['action']:7} {d['reason']:16} "
                               f"user={d['user'].removeprefix(run + '-'):6} session={d['session'].removeprefix(run + '-'):12} "
                               f"policy={','.join(d.get('policy') or [])}  [{sig}]  {why}")
        feeder.cancel()
        if bg:
            bg.cancel()
        await consumer.stop()
        await producer.stop()
        reasons: dict[str, int] = {}
        for d in seen.values():
            reasons[d["reason"]] = reasons.get(d["reason"], 0) + 1
        click.echo(f"\n{len(seen)} decisions on the scripted sessions in {seconds:.0f}s: "
                   + ", ".join(f"{k}={v}" for k, v in sorted(reasons.items())))
        click.echo(f"{background_decisions} more on simulated background users ({rate:.0f} events/s)")
        click.echo("audit trail: topic lapse.audit; dead letters: lapse.dead-letters; metrics: /metrics")
        return 0 if seen else 1
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGTERM)
            try:
                worker.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(worker.pid, signal.SIGKILL)


@click.command("demo")
@click.option("--seconds", default=70.0, show_default=True, help="how long to feed and watch")
@click.option("--rate", default=100.0, show_default=True, help="simulated background events per second (0: none)")
def demo_cmd(seconds: float, rate: float) -> None:
    """Run the worker on the local broker with a realistic stream and show revocations as they arrive."""
    sys.exit(asyncio.run(_run(seconds, rate)))
