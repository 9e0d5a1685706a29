"""Prometheus' metrics: a collector that reads `Stats` at each scrape (listener.py serves them).

A collector, not a second set of counters, so /metrics, the status file and STATUS= can never
disagree.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from .. import __version__
from .stats import Stats


class StatsCollector(Collector):
    """Turns a `Stats` snapshot into Prometheus metric families at each scrape."""

    def __init__(self, stats: Stats, stale_after: float, worker: str) -> None:
        self.stats = stats
        self.stale_after = stale_after
        self.worker = worker

    def collect(self) -> Iterator[Metric]:
        s = self.stats.snapshot(self.stale_after)
        yield InfoMetricFamily("transcribed", "The daemon: version, worker name, model and device.",
                               value={"version": __version__, "worker": self.worker,
                                      "model": s["model"], "device": s["device"]})
        yield _gauge("healthy", "1 when the model is loaded and the consumer's heartbeat is fresh "
                     "(what /healthz answers 200 for).", int(s["healthy"]))
        yield _gauge("heartbeat_age_seconds", "Seconds since the consumer loop's last heartbeat.",
                     s["heartbeat_age_s"])
        yield _gauge("start_time_seconds", "When the daemon started (Unix time).", s["started_at"])
        if s["model_load_s"] is not None:
            yield _gauge("model_load_seconds", "How long loading the model took at start-up.",
                         s["model_load_s"])
        jobs = CounterMetricFamily("transcribed_jobs", "Finished jobs by outcome: done, failed "
                                   "(to failed/), retried (to be tried again), requeued (back to "
                                   "the inbox on shutdown or GPU loss).", labels=["outcome"])
        for outcome, count in sorted(s["jobs"].items()):
            jobs.add_metric([outcome], count)
        yield jobs
        yield CounterMetricFamily("transcribed_audio_seconds", "Seconds of audio transcribed "
                                  "(done jobs).", value=s["audio_s"])
        yield CounterMetricFamily("transcribed_processing_seconds", "Wall-clock seconds spent on "
                                  "done jobs, decoding and writing included.", value=s["processing_s"])
        yield HistogramMetricFamily(
            "transcribed_job_processing_seconds", "Wall-clock seconds per done job.",
            buckets=list(s["processing_buckets"].items()), sum_value=s["processing_s"])
        if s["last_realtime_factor"] is not None:
            yield _gauge("realtime_factor", "Audio seconds per processing second of the last done "
                         "job; over time: rate(audio_seconds_total) / rate(processing_seconds_total).",
                         s["last_realtime_factor"])
        yield _gauge("queue_length", "Complete files waiting in the inbox at the last scan, plus "
                     "this daemon's retries (the inbox is shared: take max(), not sum(), across "
                     "daemons).", s["queue_length"])
        yield _gauge("queue_audio_seconds", "Declared audio seconds of the waiting files whose "
                     "headers tell it (the inbox is shared: take max() across daemons); over "
                     "rate(audio_seconds_total): the backlog's ETA.", s["queue_audio_s"])
        yield _gauge("inbox_ignored", "Files in the inbox at the last scan that it will never "
                     "take (an extension not in watch.extensions; each logged once as "
                     "inbox.ignored with the reason).", s["inbox_ignored"])
        if s.get("library_waiting") is not None:
            yield _gauge("library_waiting", "Library media files the last scan found without "
                         "their subtitles, not yet claimed (the libraries may be shared: take "
                         "max() across daemons).", s["library_waiting"])
        yield _gauge("busy", "1 while a job runs.", int(s["current_file"] is not None))
        progress = s["progress"]["percent"] / 100 if s["progress"] else 0.0
        yield _gauge("job_progress_ratio", "How far the running job's model decoding is, 0 to 1 "
                     "(0 when idle).", progress)
        yield _gauge("model_resident", "1 while the models are loaded; 0 after an idle unload "
                     "(model.idle_unload_seconds) until the next file loads them again.",
                     int(s["model_load_s"] is not None and s["unloaded_at"] is None))
        if s["batch_size"] is not None:
            yield _gauge("batch_size", "The batch size the next job runs with (halved on "
                         "out-of-memory, raised again after successes).", s["batch_size"])
        yield CounterMetricFamily("transcribed_oom_backoffs", "Out-of-memory errors answered by "
                                  "halving the batch size (or falling back to the CPU).",
                                  value=s["oom_backoffs"])
        yield from _storage(s["storage"])
        yield from _paused(s["paused"])
        if s["models"] is not None:
            yield from _models(s["models"])
        if s["gpu_memory_used_bytes"] is not None:
            yield _gauge("gpu_memory_used_bytes", "Memory in use on this daemon's GPU, by every "
                         "process on it (sampled from the heartbeat).", s["gpu_memory_used_bytes"])
        if s["gpu_memory_total_bytes"] is not None:
            yield _gauge("gpu_memory_total_bytes", "Memory of this daemon's GPU.",
                         s["gpu_memory_total_bytes"])


def _paused(paused: dict[str, Any] | None) -> Iterator[Metric]:
    """`transcribed pause` or quiet hours (consumer/gate.py): no new job starts."""
    yield _gauge("paused", "1 while no new job starts: `transcribed pause` or quiet hours "
                 "(schedule.quiet); the running job finishes, files keep arriving.", int(paused is not None))
    if paused is not None and paused.get("until") is not None:
        yield _gauge("paused_until_seconds", "When the pause ends by itself (Unix time); absent "
                     "while it lasts until `transcribed resume`.", paused["until"])


def _models(models: dict[str, Any]) -> Iterator[Metric]:
    """Several Whisper models (engine/resident.py): what is loaded, the budget, the switches."""
    yield _gauge("models_resident", "Whisper models loaded now (a route's, library's or "
                 "sidecar's own beside the default).", len(models["resident"]))
    yield _gauge("models_resident_bytes", "Estimated memory of the Whisper models loaded now.",
                 models["resident_bytes"])
    yield _gauge("models_budget_bytes", "models.memory_budget: the memory the loaded Whisper "
                 "models may take together (stated at start).", models["budget_bytes"])
    yield CounterMetricFamily("transcribed_model_switches", "Whisper models loaded for a job "
                              "(with the models evicted to make room).", value=models["switches"])
    if models.get("last_switch_s") is not None:
        yield _gauge("model_switch_seconds", "How long the last model switch took (evictions "
                     "and the load).", models["last_switch_s"])


def _storage(storage: dict[str, Any]) -> Iterator[Metric]:
    """Waiting for storage (spool/storage.py): the gauge an alert reads, and the figures."""
    yield _gauge("storage_waiting", "1 while the daemon waits for storage: its folders' "
                 "filesystem is read-only, over quota, out of inodes, or has less free space than "
                 "folders.min_free_bytes. No new file is taken and nothing fails meanwhile.",
                 int(bool(storage.get("waiting"))))
    yield _gauge("storage_jobs_waiting", "This daemon's jobs waiting for storage to take their "
                 "writes (their work kept).", storage.get("jobs_waiting") or 0)
    if storage.get("free_bytes") is not None:
        yield _gauge("storage_free_bytes", "Free bytes of the folders' filesystem at the last look "
                     "(statvfs; a quota is not seen here).", storage["free_bytes"])
    if storage.get("floor_bytes") is not None:
        yield _gauge("storage_floor_bytes", "folders.min_free_bytes: below this much free space "
                     "no new file is claimed.", storage["floor_bytes"])


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(f"transcribed_{name}", documentation, value=value)
