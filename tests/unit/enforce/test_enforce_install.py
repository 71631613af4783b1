"""The enforcement SDK needs only the base install (aiokafka, joserfc, orjson): a gateway does not
install the worker's Faust, River, numpy or RocksDB."""

from __future__ import annotations

import subprocess
import sys

BLOCKED = ("faust", "mode", "river", "numpy", "scipy", "rocksdict", "click", "prometheus_client", "aiohttp",
           "streams.service", "streams.engine", "models")

PROBE = f"""
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if any(name == b or name.startswith(b + ".") for b in {BLOCKED!r}):
            raise ImportError("not in the enforce install: " + name)
sys.meta_path.insert(0, Block())
import enforce, enforce.client, enforce.middleware, enforce.verify, enforce.state, enforce.wire, enforce.sessions
print("ok", sorted(m for m in sys.modules if m.split(".")[0] in ("streams", "models")))
"""


def test_the_enforce_sdk_imports_without_the_workers_dependencies():
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("ok")


def test_the_base_install_declares_no_worker_dependency():
    import tomllib
    from pathlib import Path

    meta = tomllib.loads((Path(__file__).resolve().parents[3] / "pyproject.toml").read_text())["project"]
    base = {d.split(">")[0].split("=")[0].split("[")[0].strip() for d in meta["dependencies"]}
    assert base <= {"aiokafka", "orjson", "joserfc", "cryptography"}, base
