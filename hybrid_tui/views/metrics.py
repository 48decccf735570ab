"""Prometheus metrics of a run, served on 127.0.0.1 by ``--metrics-port``.

Room: views (a read-only view over the store, like the console). A custom collector reads
the store at scrape time, so every value equals what the store holds at that moment: tasks
by state, attempts by outcome and failure type, spend and budgets, agents and utilisation,
queue depth, pool target, the time forecast (``hybrid_eta_seconds``: expected, low and
high seconds until the mission ends, counted down from the store's latest forecast), the
latest resource sample, and a histogram of scheduling latency
(a dependency becoming ``done`` -> its dependent going ``running``), measured from the
coordinator's own timestamps on the ``task.status`` events and accumulated incrementally.

The registry is this module's own (never the global one), so two runs in one process, or
tests, never mix their metrics.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Callable, Iterator

from prometheus_client import CollectorRegistry, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from hybrid_tui.store import queries
from hybrid_tui.vocabulary import TASK_STATUSES

TASK_STATES = TASK_STATUSES
AGENT_STATES = ("idle", "busy", "draining", "retired")
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class _LatencyTracker:
    """Dependency done -> dependent running, from the store's task.status events (incremental)."""

    def __init__(self, run_id: str):
        self.run_id = run_id
        self.histogram = Histogram(
            "hybrid_scheduling_latency_seconds",
            "Time from a task's last dependency becoming done to the task being dispatched (running).",
            labelnames=["run"], buckets=LATENCY_BUCKETS, registry=None,
        )
        self.child = self.histogram.labels(run=run_id)
        self.last_seq = 0
        self.done_at: dict[str, float] = {}
        self.dispatched: set[str] = set()
        self.deps: dict[str, list[str]] = {}
        self.observed = 0

    def _load_deps(self) -> None:
        self.deps = {}
        for task_id, depends_on in queries.dependency_pairs(self.run_id):
            self.deps.setdefault(task_id, []).append(depends_on)

    def update(self) -> None:
        rows = queries.status_events_after(self.run_id, self.last_seq)
        if not rows:
            return
        self.last_seq = rows[-1][0]
        self._load_deps()
        for _seq, ts, task, data_json in rows:
            try:
                new = json.loads(data_json or "{}").get("new")
            except ValueError:
                continue
            if new == "done":
                self.done_at[task] = ts
            elif new == "running" and task not in self.dispatched:
                self.dispatched.add(task)
                deps = self.deps.get(task, [])
                if deps and all(d in self.done_at for d in deps):
                    self.child.observe(max(0.0, ts - max(self.done_at[d] for d in deps)))
                    self.observed += 1


class StoreCollector(Collector):
    """Every metric of one run, read from the store when Prometheus scrapes."""

    def __init__(self, run_id: str, clock: Callable[[], float] = time.time):
        self.run_id = run_id
        self.clock = clock
        self.latency = _LatencyTracker(run_id)
        self._lock = threading.Lock()

    def collect(self) -> Iterator[Metric]:
        # One read snapshot for every value of this scrape (the HTTP server's threads open
        # their own connection).
        with self._lock, queries.read_snapshot_on_this_thread():
            families = list(self._families())
        yield from families

    def _families(self) -> Iterator[Metric]:
        run_id = self.run_id
        run = queries.find_run(run_id)
        if run is None:
            return
        info = GaugeMetricFamily("hybrid_run_info", "The run (value 1), with its mission, status and backend.",
                                 labels=["run", "mission", "status", "backend"])
        info.add_metric([run_id, run.mission_name, run.status, run.backend], 1)
        yield info
        paused = GaugeMetricFamily("hybrid_run_paused", "1 while dispatching is paused (reason in hybrid_run_info / events).",
                                   labels=["run"])
        paused.add_metric([run_id], 1 if run.status == "paused" else 0)
        yield paused

        counts = dict.fromkeys(TASK_STATES, 0)
        counts.update(queries.task_status_counts(run_id))
        tasks = GaugeMetricFamily("hybrid_tasks", "Tasks by state.", labels=["run", "state"])
        for state, n in counts.items():
            tasks.add_metric([run_id, state], n)
        yield tasks
        queue = GaugeMetricFamily("hybrid_queue_depth", "Tasks ready and waiting for an agent.", labels=["run"])
        queue.add_metric([run_id], counts.get("ready", 0))
        yield queue

        attempts = CounterMetricFamily("hybrid_attempts", "Attempts by phase, outcome and failure type.",
                                       labels=["run", "phase", "outcome", "failure_type"])
        spend_by_phase: dict[str, float] = {}
        for phase, outcome, failure, n, cost in queries.attempt_outcome_groups(run_id):
            attempts.add_metric([run_id, phase, outcome, failure or ""], n)
            spend_by_phase[phase] = spend_by_phase.get(phase, 0.0) + float(cost or 0.0)
        yield attempts
        spend = CounterMetricFamily("hybrid_spend_dollars", "Money spent on attempts (USD) by phase.",
                                    labels=["run", "phase"])
        for phase in sorted(set(spend_by_phase) | {"planning", "implementing", "retry"}):
            spend.add_metric([run_id, phase], spend_by_phase.get(phase, 0.0))
        yield spend
        budget = GaugeMetricFamily("hybrid_budget_dollars", "Budgets (USD): mission and retry.", labels=["run", "budget"])
        budget.add_metric([run_id, "mission"], run.mission_budget_usd)
        budget.add_metric([run_id, "retry"], run.retry_budget_usd)
        yield budget

        agent_counts = dict.fromkeys(AGENT_STATES, 0)
        busy = GaugeMetricFamily("hybrid_agent_busy", "1 while an agent works on a task.", labels=["run", "agent", "role"])
        busy_seconds = CounterMetricFamily("hybrid_agent_busy_seconds", "Seconds an agent spent on tasks.",
                                           labels=["run", "agent"])
        for agent in queries.agent_records(run_id):
            agent_counts[agent.state] = agent_counts.get(agent.state, 0) + 1
            if agent.state != "retired":
                busy.add_metric([run_id, agent.agent_id, agent.role], 1 if agent.state == "busy" else 0)
            busy_seconds.add_metric([run_id, agent.agent_id], agent.busy_seconds)
        agents = GaugeMetricFamily("hybrid_agents", "Agents by state.", labels=["run", "state"])
        for state, n in agent_counts.items():
            agents.add_metric([run_id, state], n)
        yield agents
        yield busy
        yield busy_seconds
        live = sum(n for state, n in agent_counts.items() if state != "retired")
        util = GaugeMetricFamily("hybrid_agent_utilisation_ratio", "Busy agents / live agents (0-1).", labels=["run"])
        util.add_metric([run_id], agent_counts.get("busy", 0) / live if live else 0.0)
        yield util
        pool = GaugeMetricFamily("hybrid_pool_target", "Target size of the implementer pool.", labels=["run"])
        pool.add_metric([run_id], run.pool_target)
        yield pool

        yield from self._forecast(run)

        self.latency.update()
        yield from self.latency.histogram.collect()

        yield from self._resources(run_id)

    def _forecast(self, run) -> Iterator[Metric]:
        forecast = queries.latest_forecast(run.id)
        if forecast is None:
            return
        finished = run.status == "finished"
        elapsed = self.clock() - forecast.ts
        eta = GaugeMetricFamily("hybrid_eta_seconds", "Seconds until the mission is expected to finish (the latest "
                                "forecast, counted down; 0 once finished): expected, and the low/high of its range.",
                                labels=["run", "bound"])
        finish = GaugeMetricFamily("hybrid_eta_finish_timestamp_seconds", "When the mission is expected to finish "
                                   "(epoch), with the low/high of the range.", labels=["run", "bound"])
        for bound, seconds in (("expected", forecast.remaining_seconds), ("low", forecast.low_seconds),
                               ("high", forecast.high_seconds)):
            eta.add_metric([run.id, bound], 0.0 if finished else max(seconds - elapsed, 0.0))
            finish.add_metric([run.id, bound], forecast.ts + seconds)
        yield eta
        yield finish
        made = GaugeMetricFamily("hybrid_forecast_timestamp_seconds", "When the latest forecast was made (epoch).",
                                 labels=["run"])
        made.add_metric([run.id], forecast.ts)
        yield made

    def _resources(self, run_id: str) -> Iterator[Metric]:
        sample = queries.latest_resource_sample(run_id)
        if sample is None:
            return
        for name, text, value in (
            ("hybrid_resource_sample_timestamp_seconds", "When the latest resource sample was taken (epoch).", sample.ts),
            ("hybrid_cpu_percent", "System CPU use (%).", sample.cpu_percent),
            ("hybrid_memory_percent", "System memory use (%).", sample.memory_percent),
            ("hybrid_disk_free_bytes", "Free bytes on the volume of the run folder.", sample.disk_free_bytes),
            ("hybrid_coordinator_rss_bytes", "Resident memory of the coordinator.", sample.coordinator_rss_bytes),
            ("hybrid_coordinator_open_files", "Files the coordinator holds open.", sample.open_files),
        ):
            gauge = GaugeMetricFamily(name, text, labels=["run"])
            gauge.add_metric([run_id], value)
            yield gauge
        disk = GaugeMetricFamily("hybrid_disk_percent", "Disk use (%) of the run folder's and the repository's volume.",
                                 labels=["run", "volume"])
        disk.add_metric([run_id, "run"], sample.disk_percent)
        disk.add_metric([run_id, "repo"], sample.repo_disk_percent)
        yield disk
        try:
            per_task = json.loads(sample.tasks_json or "{}")
        except ValueError:
            per_task = {}
        cpu = GaugeMetricFamily("hybrid_validation_cpu_percent", "CPU (%) of a task's validation process tree.",
                                labels=["run", "task"])
        rss = GaugeMetricFamily("hybrid_validation_rss_bytes", "Resident memory of a task's validation process tree.",
                                labels=["run", "task"])
        for task, usage in sorted(per_task.items()):
            cpu.add_metric([run_id, task], float(usage.get("cpu", 0.0)))
            rss.add_metric([run_id, task], float(usage.get("rss", 0)))
        yield cpu
        yield rss


def make_registry(run_id: str, clock: Callable[[], float] = time.time) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StoreCollector(run_id, clock))
    return registry


class MetricsServer:
    """``/metrics`` of one run on ``host:port`` (a daemon thread); ``close()`` stops it."""

    def __init__(self, run_id: str, port: int, host: str = "127.0.0.1"):
        self.run_id = run_id
        self.registry = make_registry(run_id)
        try:
            self.httpd, self.thread = start_http_server(port, addr=host, registry=self.registry)
        except OSError as exc:
            raise MetricsError(f"--metrics-port {port}: cannot listen on {host}:{port}: {exc.strerror or exc}") from None
        self.host = host
        self.port = int(self.httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/metrics"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


class MetricsError(Exception):
    """The metrics endpoint cannot start (port in use, bad port): one line."""


def start_metrics(run_id: str, port: int | None, host: str = "127.0.0.1") -> MetricsServer | None:
    """The CLI's entry: None without a port."""
    if port is None:
        return None
    if not 0 <= port <= 65535:
        raise MetricsError(f"--metrics-port {port}: not a TCP port (0-65535)")
    return MetricsServer(run_id, port, host)


def parse_metrics(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Exposition text -> {(sample name, sorted labels): value} (for tests and tools)."""
    out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out
