"""The Grafana dashboard in ops/grafana: well-formed, and querying only the
metrics (and their labels) that the server exports."""

from __future__ import annotations

import json
import re
from pathlib import Path

from prometheus_client.metrics import MetricWrapperBase

from batchgrpc import metrics

DASHBOARD = Path(__file__).parents[2] / "ops" / "grafana" / "batchgrpc.json"

#: The samples each kind of family exports, by suffix.
SUFFIXES = {"counter": ("_total",), "gauge": ("",), "histogram": ("_bucket", "_sum", "_count")}


def exported() -> dict[str, set[str]]:
    """Every sample name of `batchgrpc.metrics`, with its labels."""
    samples: dict[str, set[str]] = {}
    for metric in vars(metrics).values():
        if not isinstance(metric, MetricWrapperBase):
            continue
        labels = set(metric._labelnames)
        for family in metric.describe():
            for suffix in SUFFIXES[family.type]:
                samples[family.name + suffix] = labels | ({"le"} if suffix == "_bucket" else set())
    return samples


def expressions() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["panels"], "a dashboard with panels"
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


def test_the_contracts_metrics_are_exported() -> None:
    samples = exported()
    for name in (
        "grpc_server_started_total",
        "grpc_server_handled_total",
        "grpc_server_msg_received_total",
        "grpc_server_msg_sent_total",
        "grpc_server_handling_seconds_bucket",
        "batchgrpc_batch_rows_total",
        "batchgrpc_events_dispatched_total",
        "batchgrpc_events_undelivered",
        "batchgrpc_jobs",
        "batchgrpc_rate_limited_total",
    ):
        assert name in samples
    assert samples["grpc_server_handled_total"] == {"grpc_type", "grpc_service", "grpc_method", "grpc_code"}
    assert samples["grpc_server_handling_seconds_bucket"] == {"grpc_type", "grpc_service", "grpc_method", "le"}


def test_every_query_of_the_dashboard_reads_exported_metrics_and_labels() -> None:
    samples = exported()
    queried: set[str] = set()
    for expr in expressions():
        names = set(re.findall(r"\b(?:grpc_server|batchgrpc)_\w+", expr))
        assert names, f"no metric in {expr!r}"
        assert names <= set(samples), f"{expr!r} reads {names - set(samples)}, which the server does not export"
        labels = set().union(*(samples[n] for n in names))
        for group in re.findall(r"\bby \(([^)]*)\)", expr):
            used = {label.strip() for label in group.split(",")}
            assert used <= labels, f"{expr!r} groups by {used - labels}"
        for label in re.findall(r"(\w+)\s*!?=~?\s*\"", expr):
            assert label in labels, f"{expr!r} filters on {label}"
        queried |= names
    # Every family of the contract has a panel.
    assert {
        "grpc_server_handled_total",
        "grpc_server_handling_seconds_bucket",
        "batchgrpc_batch_rows_total",
        "batchgrpc_events_dispatched_total",
        "batchgrpc_events_undelivered",
        "batchgrpc_jobs",
        "batchgrpc_rate_limited_total",
    } <= queried
