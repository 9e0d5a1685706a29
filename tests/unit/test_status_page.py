"""The status page's words from a Stats snapshot, without a listener: who may read it, how paths
are shown (relative to a configured folder, never outside one), what every state says, and that
nothing a file name holds can become markup. The page in a real browser is
tests/integration/test_status_page.py."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from transcribed.config import parse_config, resolve_paths
from transcribed.operations.progress import JobProgress
from transcribed.operations.stats import RECENT_ENDINGS, WAITING_NAMED, Stats
from transcribed.operations.status_page import StatusPage

ROOT = Path("/srv/t")


def _page(**metrics: object) -> StatusPage:
    config = parse_config({"metrics": metrics, "libraries": [{"path": "/media/films"}]})
    return StatusPage(resolve_paths(config, ROOT), "host.1.2")


def _running_stats() -> Stats:
    stats = Stats()
    stats.model_loaded("large-v3-turbo", "cuda", 2.0, 16)
    stats.running()
    return stats


@pytest.mark.parametrize(("address", "allowed"), [
    ("127.0.0.1", True), ("127.8.9.10", True), ("::1", True), ("::ffff:127.0.0.1", True),
    ("192.168.1.20", False), ("::ffff:192.168.1.20", False), ("fe80::1%eth0", False), ("junk", False),
])
def test_only_loopback_reads_the_page_by_default(address: str, allowed: bool) -> None:
    assert _page().allows(address) is allowed


def test_the_allowed_networks_are_the_configs_and_none_turns_the_page_off() -> None:
    page = _page(status_page_clients=["192.168.1.0/24"])
    assert page.allows("192.168.1.20") and not page.allows("127.0.0.1")
    assert not _page(status_page_clients=[]).enabled


def test_a_bad_network_is_refused_naming_the_key() -> None:
    from transcribed.errors import ConfigError

    with pytest.raises(ConfigError, match="metrics.status_page_clients"):
        parse_config({"metrics": {"status_page_clients": ["192.168.1.0/33"]}})


@pytest.mark.parametrize(("path", "shown"), [
    ("/srv/t/data/outbox/talks/a.srt", "outbox/talks/a.srt"),
    ("/srv/t/data/done/a.wav", "done/a.wav"),
    ("/media/films/Film (2001)/Film.en.srt", "films/Film (2001)/Film.en.srt"),
    ("/srv/t/data/state/work/w/j/src/a.wav", None),
    ("/etc/passwd", None),
    ("/srv/t/data/outbox/../../../etc/passwd", None),
])
def test_a_path_is_shown_under_its_folder_or_not_at_all(path: str, shown: str | None) -> None:
    assert _page().shown(path) == shown


def test_a_relative_name_is_shown_only_inside_the_folder_it_is_in() -> None:
    page = _page()
    assert page.shown("calls/monday.mp3", "inbox") == "inbox/calls/monday.mp3"
    assert page.shown("../../etc/passwd", "inbox") is None
    assert page.shown("a.wav") is None


def test_idle_with_nothing_done_yet() -> None:
    html = _page().render(_running_stats().snapshot(120)).decode()
    assert 'id="health">working<' in html
    assert "large-v3-turbo on cuda" in html
    assert "Nothing is being transcribed." in html and "Nothing waits." in html
    assert "No job has ended yet." in html
    assert '<meta http-equiv="refresh" content="5">' in html
    assert "<script" not in html


def test_a_running_job_what_waits_and_the_jobs_ended() -> None:
    stats = _running_stats()
    stats.waiting(3, {"calls/monday.mp3": 1800.0, "b.wav": None, "long.wav": 7200.0})
    stats.job_started("long.wav", "j1")
    progress = JobProgress("j1", 7200.0, time.monotonic() - 60, None, clock=lambda: 1000.0)
    progress.started, progress._model_started = 900.0, 900.0  # noqa: SLF001 - a fixed rate: 60 % in 100 s
    progress.update(60.0)
    stats.track(progress)
    stats.landed("j0", "interviews/anna.wav", "done",
                 ["/srv/t/data/done/interviews/anna.wav", "/srv/t/data/outbox/interviews/anna.srt",
                  "/etc/passwd"], audio_seconds=1234.0, took_seconds=130.0)
    stats.landed("jx", "notes.mp3", "failed", ["/srv/t/data/failed/notes.mp3"],
                 error={"kind": "not_audio", "message": "no audio stream", "stage": "decode"})
    stats.hooks_seen(2, {"jx": "ntfy, line 2: connection refused"}, 1)
    html = _page().render(stats.snapshot(120)).decode()
    assert 'data-percent="60.0"' in html and "of 2 h 00 min of audio" in html
    assert "inbox/calls/monday.mp3" in html and "30 min" in html and "length not known yet" in html
    assert "inbox/long.wav" not in html, "the running file no longer waits"
    assert "done/interviews/anna.wav" in html and "outbox/interviews/anna.srt" in html
    assert "20 min 34 s of audio, took 2 min 10 s" in html
    assert "/etc/passwd" not in html and "/srv/t" not in html
    assert "not_audio: no audio stream" in html and "kept in <code>failed/notes.mp3</code>" in html
    assert "2 pending" in html and "ntfy, line 2: connection refused" in html and "1 given up" in html
    assert html.index("notes.mp3") < html.index("anna.wav"), "the newest first"


def test_every_condition_the_snapshot_carries_is_said() -> None:
    stats = _running_stats()
    stats.paused(True)
    snapshot = {**stats.snapshot(120), "degraded": "waiting for storage: /srv is full"}
    html = _page().render(snapshot).decode()
    assert "Paused: a folder refuses finished work" in html
    assert "Waiting: waiting for storage: /srv is full" in html
    assert 'id="health">waiting<' in html
    stopped = _page().render({**Stats().snapshot(120)}).decode()
    assert 'id="health">not working<' in stopped and "model not loaded yet" in stopped


def test_a_file_name_cannot_become_markup() -> None:
    stats = _running_stats()
    evil = '<img src=x onerror=alert(1)>"&.wav'
    stats.waiting(1, {evil: 3.0})
    stats.landed("j", evil, "failed", [f"/srv/t/data/failed/{evil}"],
                 error={"kind": "not_audio", "message": "<b>bold</b>", "stage": "decode"})
    html = _page().render(stats.snapshot(120)).decode()
    assert "<img" not in html and "<b>" not in html
    assert "&lt;img src=x onerror=alert(1)&gt;&quot;&amp;.wav" in html


def test_stats_keep_the_last_endings_and_name_the_first_waiting_files() -> None:
    stats = _running_stats()
    for n in range(RECENT_ENDINGS + 5):
        stats.landed(f"j{n}", f"f{n}.wav", "done", [])
    stats.waiting(WAITING_NAMED + 10, {f"w{n}.wav": float(n) for n in range(WAITING_NAMED + 10)})
    stats.library_waits(2, {"/media/films/a.mkv": 60.0, "/media/films/b.mkv": None})
    snapshot = stats.snapshot(120)
    assert [job["file"] for job in snapshot["recent"]][:2] == [f"f{RECENT_ENDINGS + 4}.wav",
                                                               f"f{RECENT_ENDINGS + 3}.wav"]
    assert len(snapshot["recent"]) == RECENT_ENDINGS
    assert len(snapshot["waiting"]) == WAITING_NAMED and snapshot["waiting"][0]["from"] == "inbox"
    assert snapshot["queue_audio_s"] == sum(range(WAITING_NAMED + 10))


def test_paths_in_messages_are_shortened_to_their_folders_name() -> None:
    """An error that names the work folder, and a library job's summary line, show no path of
    this machine."""
    stats = _running_stats()
    stats.landed("j", "a.wav", "failed", [], error={
        "kind": "unreadable", "stage": "decode",
        "message": "cannot open /srv/t/data/state/work/h.1.2/j/src/a.wav: Permission denied"})
    stats.job_started("/media/films/Film (2001)/Film.mkv", "j2")
    html = _page().render(stats.snapshot(120)).decode()
    assert "cannot open state/work/h.1.2/j/src/a.wav: Permission denied" in html
    assert "transcribing films/Film (2001)/Film.mkv" in html
    assert "/srv/t" not in html and "/media/films" not in html


def test_a_pause_and_the_loaded_models_are_said_everywhere_from_one_snapshot() -> None:
    """`transcribed pause` (or quiet hours) and the resident models: the page, the status line,
    `transcribed status` and /metrics, all worded from the same snapshot."""
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.parser import text_string_to_metric_families

    from transcribed.operations.metrics import StatsCollector
    from transcribed.operations.status_file import render
    from transcribed.operations.status_line import describe

    stats = _running_stats()
    until = time.time() + 3600
    stats.pause_changed({"by": "pause", "since": time.time() - 60, "until": until, "reason": "game night",
                         "asked_by": "ann@nas", "now": False})
    stats.models_seen({"resident": ["tiny.en", "large-v3"], "resident_bytes": 2 * 2**30,
                       "budget_bytes": 6 * 2**30, "switches": 3, "last_switch_s": 2.5})
    snapshot = stats.snapshot(120)
    html = _page().render(snapshot).decode()
    assert "Paused until" in html and "(transcribed pause by ann@nas)" in html and "files that arrive are counted" in html
    assert describe(snapshot).startswith("paused until")
    record = {**snapshot, "worker": "host.1.2", "host": "elsewhere", "pid": 1}
    text = render([record], Path("/srv/t/state/status"))
    assert "paused 60 s ago by ann@nas (game night), until" in text
    assert "models loaded: tiny.en, large-v3 (2.0 of 6.0 GiB budget); 3 loaded for a job, the last in 2.5 s" in text
    registry = CollectorRegistry()
    registry.register(StatsCollector(stats, 120, "host.1.2"))

    def metrics() -> dict[str, float]:
        text = generate_latest(registry).decode()
        return {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples}

    scraped = metrics()
    assert scraped["transcribed_paused"] == 1 and scraped["transcribed_paused_until_seconds"] == until
    assert scraped["transcribed_models_resident"] == 2 and scraped["transcribed_model_switches_total"] == 3
    stats.pause_changed(None)
    assert metrics()["transcribed_paused"] == 0 and "transcribed_paused_until_seconds" not in metrics()
