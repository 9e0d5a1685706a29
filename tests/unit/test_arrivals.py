"""When a file in the inbox counts as complete: close events, settling, and never dropping a file."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from transcribed.config import Watch
from transcribed.intake.arrivals import Arrivals
from transcribed.intake.watcher import start_observer


class Clock:
    """A hand-moved clock, so settling is tested without sleeping."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _arrivals(settle: float = 2.0) -> tuple[Arrivals, Clock]:
    clock = Clock()
    return Arrivals(settle, clock=clock), clock


def test_a_closed_file_is_ready_at_once(tmp_path: Path) -> None:
    """inotify's close-after-write (or a rename into place) means complete."""
    arrivals, _ = _arrivals()
    path = tmp_path / "a.wav"
    path.write_bytes(b"x" * 10)
    arrivals.closed(path)
    assert arrivals.ready([path]) == [path]


def test_an_unannounced_file_is_ready_once_it_has_not_changed_for_settle_seconds(tmp_path: Path) -> None:
    """No events (a polled share): size and mtime must stay the same for settle_seconds."""
    arrivals, clock = _arrivals(settle=2.0)
    path = tmp_path / "a.wav"
    path.write_bytes(b"x")
    assert arrivals.ready([path]) == []
    assert arrivals.next_check_in() == 2.0
    clock.now += 1.9
    assert arrivals.ready([path]) == []
    clock.now += 0.1
    assert arrivals.ready([path]) == [path]


def test_a_growing_file_is_looked_at_again_and_never_dropped(tmp_path: Path) -> None:
    """Each change restarts the settle time; the file stays known until it settles."""
    arrivals, clock = _arrivals(settle=2.0)
    path = tmp_path / "a.wav"
    for size in range(1, 6):
        path.write_bytes(b"x" * size)
        clock.now += 1.5
        assert arrivals.ready([path]) == []
        assert arrivals.pending() == 1
    clock.now += 2.0
    assert arrivals.ready([path]) == [path]


def test_a_file_being_written_waits_for_its_close_even_past_the_settle_time(tmp_path: Path) -> None:
    """A writer that pauses longer than settle_seconds does not get its file taken half-written."""
    arrivals, clock = _arrivals(settle=2.0)
    path = tmp_path / "a.wav"
    path.write_bytes(b"x")
    arrivals.written(path)
    clock.now += 30
    assert arrivals.ready([path]) == []
    arrivals.closed(path)
    assert arrivals.ready([path]) == [path]


def test_a_lost_close_event_costs_a_minute_not_the_file(tmp_path: Path) -> None:
    """If the close event never comes (inotify queue overflow), the file is taken once quiet long enough."""
    arrivals, clock = _arrivals(settle=2.0)
    path = tmp_path / "a.wav"
    path.write_bytes(b"x")
    arrivals.written(path)
    assert arrivals.next_check_in() == 60.0
    clock.now += 59
    assert arrivals.ready([path]) == []
    clock.now += 1
    assert arrivals.ready([path]) == [path]


def test_a_changed_file_must_settle_again_even_after_a_close(tmp_path: Path) -> None:
    """Closed, then rewritten: the old close no longer counts."""
    arrivals, clock = _arrivals(settle=2.0)
    path = tmp_path / "a.wav"
    path.write_bytes(b"x")
    arrivals.closed(path)
    path.write_bytes(b"xx")
    os.utime(path, ns=(1, 1))
    assert arrivals.ready([path]) == []
    clock.now += 2
    assert arrivals.ready([path]) == [path]


def test_files_are_offered_in_order_of_arrival_and_vanished_ones_forgotten(tmp_path: Path) -> None:
    """Oldest first; a file gone from the scan is dropped from memory, not reported."""
    arrivals, clock = _arrivals(settle=1.0)
    late, early = tmp_path / "a.wav", tmp_path / "b.wav"
    early.write_bytes(b"x")
    arrivals.ready([early])
    clock.now += 0.5
    late.write_bytes(b"x")
    arrivals.ready([early, late])
    clock.now += 1
    assert arrivals.ready([late, early]) == [early, late]
    early.unlink()
    assert arrivals.ready([late]) == [late]
    assert arrivals.pending() == 1


def test_a_file_seen_later_but_come_in_earlier_is_offered_first(tmp_path: Path) -> None:
    """A look that lists folders while a flood is renamed in can find a later file before an
    earlier one (its folder was listed first); the ctime, not the sighting, decides the order."""
    arrivals, clock = _arrivals(settle=1.0)
    earlier, later = tmp_path / "a.wav", tmp_path / "b.wav"
    earlier.write_bytes(b"x")
    later.write_bytes(b"x")
    assert earlier.stat().st_ctime_ns < later.stat().st_ctime_ns
    arrivals.closed(later)
    clock.now += 0.5
    arrivals.closed(earlier)
    assert arrivals.ready([later, earlier]) == [earlier, later]


def test_files_one_scan_finds_together_are_offered_in_the_order_they_came_in(tmp_path: Path) -> None:
    """A flood, or the files waiting at start: a scan finds them at one instant, in the folders'
    order; they are offered oldest-first by when they came into the inbox (their ctime)."""
    arrivals, clock = _arrivals(settle=1.0)
    (tmp_path / "z").mkdir()
    first, second, third = tmp_path / "z" / "a.wav", tmp_path / "b.wav", tmp_path / "z" / "c.wav"
    for path in (first, second, third):
        path.write_bytes(b"x")
        os.utime(path, ns=(0, 0))  # mtimes say nothing (a copy that kept them): the ctimes do
    assert first.stat().st_ctime_ns < second.stat().st_ctime_ns < third.stat().st_ctime_ns
    arrivals.ready([second, third, first])  # the scan's own order (folders sorted)
    clock.now += 2
    assert arrivals.ready([second, third, first]) == [first, second, third]


def test_with_the_real_observer_a_file_renamed_in_from_outside_is_complete_at_once(tmp_path: Path) -> None:
    """Write elsewhere, then rename into the inbox: the atomic delivery. inotify reports it as
    moved in, so it is complete without waiting to settle; one still open for writing is not."""
    inbox, staging = tmp_path / "inbox", tmp_path / "staging"
    inbox.mkdir()
    staging.mkdir()
    arrivals, wake = Arrivals(settle_seconds=600), threading.Event()
    observer = start_observer(inbox, Watch(polling=False), arrivals, wake)
    try:
        (staging / "a.wav").write_bytes(b"x" * 10)
        with open(inbox / "open.wav", "wb") as writer:
            writer.write(b"x")
            writer.flush()
            os.rename(staging / "a.wav", inbox / "a.wav")
            deadline = time.monotonic() + 10
            while arrivals.ready([inbox / "a.wav"]) == [] and time.monotonic() < deadline:
                wake.wait(0.1)
            assert arrivals.ready([inbox / "a.wav", inbox / "open.wav"]) == [inbox / "a.wav"]
    finally:
        observer.stop()
        observer.join()
