"""``lapse simulate``: write a seeded, labelled synthetic stream as canonical JSON lines."""

from __future__ import annotations

import click
import orjson

from models.simulate import iter_stream

__all__ = ["simulate_cmd"]


@click.command("simulate")
@click.option("--users", type=int, default=1000, show_default=True, help="Number of simulated users.")
@click.option("--hours", type=float, default=48.0, show_default=True, help="Simulated hours of traffic.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed: same seed, same stream.")
@click.option("--attack-rate", type=float, default=0.03, show_default=True,
              help="Probability that a user-day carries one labelled attack.")
@click.option("--attack-after", type=float, default=None,
              help="Hours before the first attack (default: half the run, at most 24).")
@click.option("--generator", type=click.Choice(["simulate", "heldout"]), default="simulate", show_default=True,
              help="'heldout': the second, independent generator (models.simulate_heldout; whole days, "
                   "attacks from hour 3), for checks on traffic the model was not tuned on.")
@click.option("--out", "out_path", type=click.Path(dir_okay=False, writable=True), default="-", show_default=True,
              help="Events file (JSON lines, ordered by ts); '-' for stdout.")
@click.option("--labels", "labels_path", type=click.Path(dir_okay=False, writable=True), default=None,
              help="Labels file (JSON lines: kind, user, session, start, start_ts, detail).")
def simulate_cmd(users: int, hours: float, seed: int, attack_rate: float, attack_after: float | None,
                 generator: str, out_path: str, labels_path: str | None) -> None:
    """Generate realistic labelled traffic: benign users plus hijacks, impossible travel, credential
    stuffing, exfiltration, unattended sessions and IDS-flagged hosts."""
    n_ev = n_lab = 0
    out = click.open_file(out_path, "wb")
    lab = open(labels_path, "wb") if labels_path else None  # noqa: SIM115
    try:
        if generator == "heldout":
            from models.draws import heldout_stream

            evs, labs = heldout_stream(users, hours, seed, attack_rate, attack_after)
            stream = [("label", x) for x in labs] + [("event", x) for x in evs]
        else:
            after = None if attack_after is None else attack_after * 3600.0
            stream = iter_stream(users, hours, seed, attack_rate, after)
        for kind, item in stream:
            if kind == "event":
                out.write(orjson.dumps(item) + b"\n")
                n_ev += 1
            else:
                if lab is not None:
                    lab.write(orjson.dumps(item) + b"\n")
                n_lab += 1
    finally:
        if out_path != "-":
            out.close()
        else:
            out.flush()
        if lab is not None:
            lab.close()
    click.echo(f"simulate: {n_ev} events, {n_lab} labelled attacks, {users} users, {hours:g} h, seed {seed}", err=True)
