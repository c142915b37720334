"""Prometheus metrics of ``vecdb serve``: RPCs by method and code, data per collection, WAL, RSS.

RPC counters are updated by an interceptor as calls finish; database figures are read at scrape
time by a collector, so an idle server does no bookkeeping for them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import psutil
from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily

from vecdb.rpc.auth import SERVICE_PREFIX, wrap_handler

log = logging.getLogger("vecdb.rpc.metrics")

_LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)


class RpcMetrics:
    """The RPC counters and latency histogram, registered in ``registry``."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "vecdb_rpc_requests",
            "RPCs finished, by method and status code",
            ["method", "code"],
            registry=registry,
        )
        self.latency = Histogram(
            "vecdb_rpc_latency_seconds",
            "RPC latency by method",
            ["method"],
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )

    def observe(self, method: str, code: str, seconds: float) -> None:
        """Count one finished call."""
        self.requests.labels(method=method, code=code).inc()
        self.latency.labels(method=method).observe(seconds)


class MetricsInterceptor(grpc.ServerInterceptor):
    """Times every VecdbService call and counts it under the status code it ended with."""

    def __init__(self, metrics: RpcMetrics) -> None:
        self._metrics = metrics

    def intercept_service(self, continuation, handler_call_details):  # type: ignore[override]
        handler = continuation(handler_call_details)
        path: str = handler_call_details.method
        if handler is None or not path.startswith(SERVICE_PREFIX):
            return handler
        method = path[len(SERVICE_PREFIX) :]
        metrics = self._metrics

        def timed(behavior: Callable[..., Any], request: Any, context: grpc.ServicerContext) -> Any:
            start = time.perf_counter()
            failed = False
            try:
                return behavior(request, context)
            except BaseException:
                failed = True
                raise
            finally:
                code = context.code()
                if code is None:
                    code = grpc.StatusCode.UNKNOWN if failed else grpc.StatusCode.OK
                metrics.observe(method, code.name, time.perf_counter() - start)

        return wrap_handler(handler, timed)


class DatabaseCollector:
    """Scrape-time gauges: vectors and segments per collection, WAL bytes, process RSS."""

    def __init__(self, get_database: Callable[[], Any]) -> None:
        self._get_database = get_database
        self._process = psutil.Process()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """Yield the gauges (a closed or still-opening database yields only RSS)."""
        rss = GaugeMetricFamily("vecdb_process_rss_bytes", "Resident set size of the server process")
        rss.add_metric([], float(self._process.memory_info().rss))
        yield rss
        db = self._get_database()
        if db is None:
            return
        vectors = GaugeMetricFamily("vecdb_collection_vectors", "Live vectors per collection", labels=["collection"])
        segments = GaugeMetricFamily(
            "vecdb_collection_segments", "Sealed segments per collection", labels=["collection"]
        )
        wal_total = 0.0
        try:
            for name in db.list_collections():
                stats = db.collection(name).stats()
                vectors.add_metric([name], float(stats.get("rows", 0)))
                segments.add_metric([name], _as_number(stats.get("segments", 0)))
                wal_total += float(stats.get("wal_bytes", 0))
        except Exception as exc:  # a scrape racing a drop or a shutdown must not break /metrics
            log.debug("metrics scrape skipped database figures: %s", exc)
            return
        yield vectors
        yield segments
        wal_bytes = GaugeMetricFamily("vecdb_wal_bytes", "Bytes in the write-ahead logs of all collections")
        wal_bytes.add_metric([], wal_total)
        yield wal_bytes


def _as_number(value: Any) -> float:
    # Engines may report segments as a count or as a list of per-segment records.
    return float(len(value)) if isinstance(value, (list, tuple, dict)) else float(value)


def start_metrics(port: int, host: str, get_database: Callable[[], Any]) -> tuple[RpcMetrics, Any]:
    """Serve /metrics on ``host:port`` in a daemon thread; returns the RPC metrics and the HTTP server."""
    registry = CollectorRegistry()
    metrics = RpcMetrics(registry)
    registry.register(DatabaseCollector(get_database))  # type: ignore[arg-type]
    server, _thread = start_http_server(port, addr=host, registry=registry)
    return metrics, server
