"""Prometheus metrics in a registry of their own (several apps can live in one test process)."""

from collections import Counter as Tally
from typing import Any

from sentimentkit.config import Settings
from sentimentkit.redact import redact

CONFIDENCE_BUCKETS = (0.34, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0)
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)


class Metrics:
    """Requests and latency by route and status, predictions by label, confidence histogram.

    With PROMETHEUS_MULTIPROC_DIR set (`serve --workers N` sets it), /metrics aggregates all workers.
    """

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Histogram

        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter("sentimentkit_http_requests", "HTTP requests by route, method and status",
                                ["route", "method", "status"], registry=r)  # fmt: skip
        self.latency = Histogram("sentimentkit_http_request_duration_seconds", "Request latency by route and status",
                                 ["route", "method", "status"], buckets=LATENCY_BUCKETS, registry=r)  # fmt: skip
        self.predictions = Counter("sentimentkit_predictions", "Texts scored, by predicted label",
                                   ["label"], registry=r)  # fmt: skip
        self.confidence = Histogram("sentimentkit_prediction_confidence", "Confidence of the predicted label",
                                    buckets=CONFIDENCE_BUCKETS, registry=r)  # fmt: skip
        self.prediction_log = Counter("sentimentkit_prediction_log_rows", "Prediction-log rows by outcome: "
                                      "logged (written), dropped (queue full), failed (storage error)",
                                      ["outcome"], registry=r)  # fmt: skip
        # Children cached by label values: `.labels()` takes a lock and builds a key on every call.
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        self._label_children: dict[str, Any] = {}

    def observe(self, route: str, method: str, status: int, seconds: float, labels: Tally,
                confidences: list[float] | None) -> None:  # fmt: skip
        """Count one finished request and the predictions it made."""
        key = (route, method, status)
        children = self._children.get(key)
        if children is None:
            code = str(status)
            children = (self.requests.labels(route, method, code), self.latency.labels(route, method, code))
            self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)
        for label, count in labels.items():
            child = self._label_children.get(label)
            if child is None:
                child = self._label_children[label] = self.predictions.labels(label)
            child.inc(count)
        for value in confidences or ():
            self.confidence.observe(value)

    def add_live_monitor(self, live: Any) -> None:
        """Expose `live.gauges()` (a LiveMonitor) as sentimentkit_monitor{signal, statistic}."""
        from prometheus_client.core import GaugeMetricFamily

        class Collector:
            def collect(self) -> Any:
                family = GaugeMetricFamily("sentimentkit_monitor", "Monitoring signals over the latest "
                                           "predictions (status: 0 OK, 1 WARN, 2 ALERT)", labels=["signal", "statistic"])  # fmt: skip
                for (signal, statistic), value in live.gauges().items():
                    family.add_metric([signal, statistic], value)
                yield family

        self.registry.register(Collector())  # type: ignore[arg-type]

    def count_prediction_log(self, outcome: str, rows: int) -> None:
        """Called by the prediction log (from its writer thread, or a request's when dropping)."""
        self.prediction_log.labels(outcome).inc(rows)

    def render(self) -> tuple[bytes, str]:
        """The Prometheus text exposition (label values redacted) and its content type."""
        from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

        if Settings.from_env().prometheus_multiproc_dir:
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return _redacted(generate_latest(registry)), CONTENT_TYPE_LATEST
        return _redacted(generate_latest(self.registry)), CONTENT_TYPE_LATEST


def _redacted(exposition: bytes) -> bytes:
    text = exposition.decode("utf-8")
    clean = redact(text)
    return exposition if clean is text else clean.encode("utf-8")
