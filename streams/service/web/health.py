"""HTTP views on the worker's Faust web server (127.0.0.1 by default).

``/health``  200 while the worker decides its input, with each partition's last-inbound age;
             503 (``"status": "stalled"`` and the problems) when an essential task died, the
             expiry timer stopped, or input waits and nothing was decided for ``LAPSE_STALL_S``;
``/ready``   200 once partitions are assigned, tables recovered and Faust's rebalance has ended
             (the consumer seeked back to the committed offsets and fetching again), else 503;
``/metrics`` Prometheus exposition.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from streams.service.app import Service


def register(service: "Service") -> None:
    app = service.app

    @app.page("/health")
    async def health(self: Any, request: Any) -> Any:
        h = service.health()
        return self.json({
            **h,
            "ready": service.serving,
            "partitions": service.partitions,
            "last_inbound_age_s": service.metrics.inbound_ages(service.clock()),
            "policy_version": getattr(service.engine.policy, "version", None),
        }, status=200 if h["status"] == "ok" else 503)

    @app.page("/ready")
    async def ready(self: Any, request: Any) -> Any:
        ready = service.serving
        body = {"ready": ready, "partitions": service.partitions}
        return self.json(body, status=200 if ready else 503)

    @app.page("/metrics")
    async def metrics(self: Any, request: Any) -> Any:
        # aiohttp refuses a charset inside content_type=: pass the full header instead
        return self.bytes(service.metrics.exposition(),
                          headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})
