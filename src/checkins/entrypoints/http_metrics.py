"""Prometheus metrics of the HTTP app, kept per process.

Each gunicorn worker keeps its own figures, so one scrape of /metrics shows the
figures of the worker that served it. Label values are bounded: routes are URI templates
and "unmatched", methods are those Falcon routes, statuses are HTTP codes.
"""

from collections.abc import Callable, Iterator
from typing import Any

import prometheus_client
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector


# Latency buckets in seconds, from a cached page to a slow summary.
_LATENCY_BUCKETS = (
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
)

CONTENT_TYPE = prometheus_client.CONTENT_TYPE_LATEST


class HttpMetrics:
    """Request counts, latencies and connection pool figures of one app."""

    def __init__(self, pool_stats: Callable[[], dict[str, int]]) -> None:
        # Leave out the *_created series, which double the output. The switch
        # is process-wide in prometheus_client.
        prometheus_client.disable_created_metrics()
        self.registry = prometheus_client.CollectorRegistry(auto_describe=True)
        self._requests = prometheus_client.Counter(
            "checkins_http_requests",
            "HTTP requests served, by route template, method and status code.",
            ("route", "method", "status"),
            registry=self.registry,
        )
        self._latency = prometheus_client.Histogram(
            "checkins_http_request_duration_seconds",
            "Time from receiving a request to returning its response, in seconds; "
            "a streamed body's transfer is not included.",
            ("route",),
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(_PoolCollector(pool_stats))
        # Labelled children by label values, because looking them up through
        # labels() on every request costs more than the update.
        self._counters: dict[tuple[str, str, int], Any] = {}
        self._histograms: dict[str, Any] = {}

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        """Count one served request and record its latency."""
        key = (route, method, status)
        counter = self._counters.get(key)
        if counter is None:
            counter = self._requests.labels(route, method, str(status))
            self._counters[key] = counter
        counter.inc()
        histogram = self._histograms.get(route)
        if histogram is None:
            histogram = self._latency.labels(route)
            self._histograms[route] = histogram
        histogram.observe(seconds)

    def render(self) -> bytes:
        """Return the metrics in the Prometheus text exposition format."""
        return prometheus_client.generate_latest(self.registry)


class _PoolCollector(Collector):
    """Reads the connection pool's figures at scrape time."""

    _DESCRIPTIONS = {
        "pool_max": "Maximum number of connections the pool may open.",
        "pool_size": "Connections open or being opened by the pool.",
        "pool_available": "Open connections idle in the pool.",
        "requests_waiting": "Requests waiting for a connection of the pool.",
    }

    def __init__(self, pool_stats: Callable[[], dict[str, int]]) -> None:
        self._pool_stats = pool_stats

    def collect(self) -> Iterator[GaugeMetricFamily]:
        stats = self._pool_stats()
        for name, description in self._DESCRIPTIONS.items():
            yield GaugeMetricFamily(
                f"checkins_db_{name}", description, value=stats.get(name, 0)
            )

    def describe(self) -> Iterator[GaugeMetricFamily]:
        for name, description in self._DESCRIPTIONS.items():
            yield GaugeMetricFamily(f"checkins_db_{name}", description)
