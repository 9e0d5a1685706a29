"""Progress and ETA of a running job, the backlog's audio, and how the reports show them.

The estimate runs on a clock the test moves (no sleeps); the backlog's durations are read from
real wav files' headers in a temp folder; the reports are the real Stats, status render and
Prometheus collector.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.media import write_random_bytes, write_tone_wav
from transcribed.intake.backlog import BacklogAudio
from transcribed.operations.metrics import StatsCollector
from transcribed.operations.progress import JobProgress, RecentSpeed, describe_eta
from transcribed.operations.stats import Stats
from transcribed.operations.status_file import judge, render
from transcribed.operations.status_line import describe


class Clock:
    """A monotonic clock that moves only when told."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def tracker(clock: Clock, audio: float | None = 600.0, recent: float | None = None) -> JobProgress:
    return JobProgress("job-1", audio, started=clock(), recent_factor=recent, clock=clock)


class TestEstimate:
    """What the job.progress events, the status and /metrics say about a running job."""

    def test_own_rate_counts_from_the_model_start_and_down_between_figures(self) -> None:
        clock = Clock()
        job = tracker(clock)
        clock.advance(20)  # decoding and finding speech: no figure
        job.model_started()
        clock.advance(30)
        job.update(25.0)  # 25 % in the model's first 30 s: 90 s more
        at_figure = job.estimate()
        clock.advance(10)
        later = job.estimate()
        assert (at_figure.percent, at_figure.audio_s, at_figure.audio_total_s) == (25.0, 150.0, 600.0)
        assert at_figure.elapsed_s == 50 and at_figure.eta_s == pytest.approx(90)
        assert at_figure.eta_from == "this job"
        assert later.eta_s == pytest.approx(80) and later.elapsed_s == 60

    def test_before_the_first_figure_the_eta_comes_from_recent_jobs(self) -> None:
        """600 s of audio at the last jobs' 10x realtime: 60 s, of which 15 have passed."""
        clock = Clock()
        job = tracker(clock, recent=10.0)
        clock.advance(15)
        estimate = job.estimate()
        assert (estimate.percent, estimate.eta_s, estimate.eta_from) == (0.0, 45.0, "recent jobs")
        clock.advance(100)  # slower than the recent jobs: never a negative time left
        assert job.estimate().eta_s == 0.0

    def test_without_figure_or_history_there_is_no_eta(self) -> None:
        clock = Clock()
        estimate = tracker(clock).estimate()
        assert (estimate.eta_s, estimate.eta_from) == (None, None)

    def test_done_is_zero_seconds_left_and_figures_are_clamped(self) -> None:
        clock = Clock()
        job = tracker(clock)
        job.model_started()
        clock.advance(5)
        job.update(130.0)
        assert (job.estimate().percent, job.estimate().eta_s) == (100.0, 0.0)

    def test_recent_speed_is_total_audio_over_total_time_of_the_last_jobs(self) -> None:
        speed = RecentSpeed(jobs=2)
        assert speed.factor() is None
        speed.add(100, 50)
        speed.add(0, 3)  # a job with no audio tells nothing about speed
        speed.add(30, 10)
        speed.add(90, 10)  # the oldest (100 s in 50 s) falls out
        assert speed.factor() == pytest.approx(120 / 20)


class TestLogThrottle:
    """job.progress: at most every log.progress_seconds, and never more than one per 5 %."""

    def test_events_wait_for_the_interval_and_for_five_percent_more(self) -> None:
        clock = Clock()
        job = tracker(clock)
        job.model_started()
        logged = []
        for _ in range(100):  # a figure every second, 1 % each
            clock.advance(1)
            job.update(job.estimate().percent + 1)
            estimate = job.due_for_log(every_seconds=3)
            if estimate is not None:
                logged.append((clock.now - 1000, estimate.percent))
        times = [t for t, _ in logged]
        percents = [p for _, p in logged]
        assert times[0] >= 3, "the first event comes one interval after the job began"
        assert all(b - a >= 3 for a, b in zip(times, times[1:]))
        assert all(b - a >= 5 for a, b in zip(percents, percents[1:]))
        assert percents == [3.0 + 5 * n for n in range(20)], "the first one whatever its percent"

    def test_a_slow_job_still_logs_once_per_interval_when_it_moves_five_percent(self) -> None:
        clock = Clock()
        job = tracker(clock)
        job.model_started()
        clock.advance(30)
        job.update(2.0)
        assert job.due_for_log(every_seconds=10) is not None  # the first event
        clock.advance(30)
        job.update(4.0)
        assert job.due_for_log(every_seconds=10) is None, "only 2 % more"
        job.update(7.0)
        assert job.due_for_log(every_seconds=10) is not None


class TestDescribe:
    """systemd's STATUS= line and `transcribed status`' summary line."""

    def snapshot_with(self, stats: Stats, job: JobProgress) -> dict:
        stats.job_started("talks/keynote.mp3", "job-1")
        stats.track(job)
        return stats.snapshot(stale_after=120)

    def test_percent_and_time_left(self) -> None:
        clock, stats = Clock(), Stats()
        stats.waiting(4, {})
        job = tracker(clock)
        job.model_started()
        clock.advance(126)
        job.update(42.0)  # 126 s for 42 %: 174 s more
        line = describe(self.snapshot_with(stats, job))
        assert line == "transcribing talks/keynote.mp3: 42 %, about 3 min left; 3 waiting; 0 done, 0 failed"

    def test_library_files_waiting_are_said_beside_the_inbox_ones(self) -> None:
        stats = Stats()
        stats.waiting(3, {})
        stats.library_waits(120)
        assert "; 3 waiting (and 120 library files); 0 done" in describe(stats.snapshot(stale_after=120))
        stats.library_waits(0)
        assert "; 3 waiting; 0 done" in describe(stats.snapshot(stale_after=120))

    def test_before_a_figure_the_line_says_the_time_left_or_the_time_so_far(self) -> None:
        clock = Clock()
        predicted = describe(self.snapshot_with(Stats(), tracker(clock, recent=5.0)))
        unknown = describe(self.snapshot_with(Stats(), tracker(clock)))
        assert predicted.startswith("transcribing talks/keynote.mp3: about 2 min left; ")
        assert unknown.startswith("transcribing talks/keynote.mp3 (0 s); ")

    @pytest.mark.parametrize(("seconds", "said"), [
        (4, "about 4 s left"), (0.2, "about 1 s left"), (44, "about 40 s left"),
        (170, "about 3 min left"), (5400, "about 1 h 30 min left"), (7260, "about 2 h 01 min left"),
    ])
    def test_eta_as_a_person_says_it(self, seconds: float, said: str) -> None:
        assert describe_eta(seconds) == said

    def test_idle_unloaded_and_reloading_states(self) -> None:
        stats = Stats()
        stats.model_loaded("tiny.en", "cpu", 1.0, 4)
        stats.running()
        stats.models_unloaded()
        unloaded = stats.snapshot(stale_after=120)
        stats.models_reloading()
        reloading = stats.snapshot(stale_after=120)
        assert describe(unloaded).startswith("idle, models unloaded; 0 waiting")
        assert describe(reloading).startswith("loading the models again for the next file;")
        assert unloaded["healthy"] and reloading["healthy"]
        assert unloaded["state"] == "unloaded" and unloaded["model_unloads"] == 1


class TestReports:
    """The same figures in the status file's render and verdict, and in /metrics."""

    def running_stats(self, clock: Clock) -> Stats:
        stats = Stats()
        stats.model_loaded("tiny.en", "cpu", 1.0, 4)
        stats.running()
        stats.waiting(3, {"a.wav": 60.0, "b.wav": 30.5, "c.wav": 0.5})
        stats.job_started("a.wav", "job-1")
        job = tracker(clock, audio=60.0)
        job.model_started()
        clock.advance(9)
        job.update(30.0)
        stats.track(job)
        return stats

    def test_metrics_give_the_ratio_and_the_audio_still_waiting(self) -> None:
        clock = Clock()
        stats = self.running_stats(clock)
        samples = scrape(stats)
        assert samples["transcribed_job_progress_ratio"] == pytest.approx(0.3)
        assert samples["transcribed_queue_audio_seconds"] == pytest.approx(31.0)  # a.wav no longer waits
        assert samples["transcribed_queue_length"] == 2
        assert samples["transcribed_model_resident"] == 1
        stats.job_finished("done", "job-1", 60.0, 30.0)
        stats.models_unloaded()
        after = scrape(stats)
        assert after["transcribed_job_progress_ratio"] == 0
        assert after["transcribed_model_resident"] == 0

    def test_status_render_shows_progress_and_the_waiting_audio(self, tmp_path: Path) -> None:
        clock = Clock()
        record = {"worker": "w", "host": "elsewhere", "pid": 1,
                  **self.running_stats(clock).snapshot(stale_after=120)}
        text = render([record], tmp_path)
        assert "transcribing a.wav: 30 %, about 20 s left; 2 waiting" in text
        assert "  30 % of 60 s of audio in 9 s, about 20 s left (from this job's rate)" in text
        assert "  2 waiting with 31 s of audio (where their headers tell it)" in text

    def test_an_idle_unloaded_daemon_is_healthy_and_says_so(self, tmp_path: Path) -> None:
        stats = Stats()
        stats.model_loaded("tiny.en", "cpu", 1.0, 4)
        stats.running()
        stats.models_unloaded()
        record = {"worker": "w", "host": "elsewhere", "pid": 1, **stats.snapshot(stale_after=120)}
        verdict = judge(record)
        assert verdict.healthy, verdict.reason
        assert "models unloaded 0 s ago (idle): the next file loads them again" in render([record], tmp_path)


def scrape(stats: Stats) -> dict[str, float]:
    registry = CollectorRegistry()
    registry.register(StatsCollector(stats, 120, "w"))
    text = generate_latest(registry).decode()
    return {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples if not s.labels}


class TestBacklogAudio:
    """The waiting files' durations, each header read once per (path, size, mtime)."""

    def test_headers_are_read_once_and_again_when_the_file_changes(self, tmp_path: Path) -> None:
        a = write_tone_wav(tmp_path / "a.wav", 2.0)
        b = write_tone_wav(tmp_path / "b.wav", 3.0)
        bad = write_random_bytes(tmp_path / "noise.wav", 4096)
        backlog = BacklogAudio()
        first = backlog.durations([a, b, bad])
        second = backlog.durations([a, b, bad])
        assert first == second == {a: pytest.approx(2.0), b: pytest.approx(3.0)}
        assert backlog.probes == 3, "each header read once; the unreadable one too (None, kept)"
        write_tone_wav(b, 5.0)
        os.utime(b, ns=(time.time_ns(), time.time_ns() + 10**9))  # a new mtime, whatever the clock's grain
        assert backlog.durations([a, b]) == {a: pytest.approx(2.0), b: pytest.approx(5.0)}
        assert backlog.probes == 4

    def test_files_no_longer_waiting_are_forgotten_and_gone_files_skipped(self, tmp_path: Path) -> None:
        a = write_tone_wav(tmp_path / "a.wav", 1.0)
        backlog = BacklogAudio()
        backlog.durations([a])
        assert backlog.durations([tmp_path / "gone.wav"]) == {}
        assert backlog.durations([a]) == {a: pytest.approx(1.0)}
        assert backlog.probes == 2, "a.wav was forgotten when it stopped waiting, then read again"

    def test_a_scan_reads_only_so_many_new_headers(self, tmp_path: Path) -> None:
        files = [write_tone_wav(tmp_path / f"{n}.wav", 1.0) for n in range(5)]
        backlog = BacklogAudio(probes_per_scan=3)
        assert len(backlog.durations(files)) == 3, "three new headers per scan"
        assert len(backlog.durations(files)) == 5, "the next scan reads the rest"
        assert backlog.probes == 5
