"""Prometheus metrics of one app, in its own registry (several apps can share a process)."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class Metrics:
    """The server's counters and the request latency histogram."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.frames_ingested = Counter(
            "visionloop_frames_ingested",
            "Frames stored by ingest (new ones only).",
            registry=self.registry,
        )
        self.detections_ingested = Counter(
            "visionloop_detections_ingested",
            "Detections stored by ingest.",
            registry=self.registry,
        )
        self.frames_duplicate = Counter(
            "visionloop_frames_duplicate",
            "Frames sent to ingest that were already stored (or repeated within a batch).",
            registry=self.registry,
        )
        self.request_seconds = Histogram(
            "visionloop_http_request_duration_seconds",
            "HTTP request latency by route template, method and status.",
            ["method", "route", "status"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )
        self.drift_alarm = Gauge(
            "visionloop_drift_alarm",
            "1 while the device's drift alarm is open, else 0 (read at each scrape).",
            ["device"],
            registry=self.registry,
        )
        self.drift_share = Gauge(
            "visionloop_drift_share",
            "Share of drifted features in the device's latest drift check.",
            ["device"],
            registry=self.registry,
        )


class LatencyMiddleware:
    """Pure ASGI middleware timing each HTTP request into ``Metrics.request_seconds``.

    The route label is the matched template (``/api/v1/frames/{frame_id}``), never the raw path,
    so label cardinality stays bounded; unmatched paths are labelled ``unmatched``.
    """

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            self.metrics.request_seconds.labels(
                scope["method"], _template(scope), str(status)
            ).observe(time.perf_counter() - start)


def _template(scope: Scope) -> str:
    # FastAPI >= 0.160 keeps included routers intact: the matched route's own path lacks the
    # prefixes, and the full template sits in the effective route context.
    context = (scope.get("fastapi") or {}).get("effective_route_context")
    path = getattr(context, "path", None) or getattr(scope.get("route"), "path", None)
    return str(path) if path else "unmatched"
