"""The ``lapse`` command line: one module per sub-command in this package (``lapse topics`` and
``lapse demo`` stay beside the topic table and the demo they drive).

Each sub-command is imported only when it is run, so ``lapse replay`` never pays for importing Faust, and a broken optional dependency cannot take
the whole command line down.
"""

from __future__ import annotations

import importlib

import click

# name -> "module:attribute" of a click.Command (or click.Group)
COMMANDS: dict[str, str] = {
    "kafka": "streams.cli.kafka:kafka",
    "topics": "streams.topics:topics_cmd",
    "replay": "streams.cli.replay:replay_cmd",
    "policy": "streams.cli.policy:policy_cmd",
    "worker": "streams.cli.worker:worker_cmd",
    "adapt": "streams.cli.adapt:adapt_cmd",
    "simulate": "streams.cli.simulate:simulate_cmd",
    "evaluate": "streams.cli.evaluate:evaluate_cmd",
    "check-adaptive": "streams.cli.check_adaptive:check_adaptive_cmd",
    "keys": "streams.cli.keys:keys_cmd",
    "produce": "streams.cli.produce:produce_cmd",
    "demo": "streams.demo:demo_cmd",
    "ssf": "streams.cli.ssf:ssf_cmd",
}


class LazyGroup(click.Group):
    """A click group whose commands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, _, attr = target.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if not (exc.name and module_name.startswith(exc.name)):
                raise
            missing = str(exc)

            @click.command(cmd_name, help=f"(not available in this build: {missing})")
            def unavailable() -> None:
                raise click.ClickException(f"'lapse {cmd_name}' is not available in this build ({missing})")

            return unavailable
        return getattr(module, attr)


@click.group(cls=LazyGroup)
@click.version_option(package_name="lapse")
def main() -> None:
    """lapse: decide in real time when an authenticated session must end."""
