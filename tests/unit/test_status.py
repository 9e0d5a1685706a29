"""Status files judged without a daemon: healthy, loading, stuck, another machine's, a
restarted container's. Written and read in a temp folder in-process; the daemons and the
`transcribed status` command are tests/integration/test_status.py."""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from transcribed.operations.metrics import StatsCollector
from transcribed.operations.stats import Stats
from transcribed.operations.status_file import StatusFile, check, forget_dead, judge, read_all, render
from transcribed.operations.status_line import describe
from transcribed.spool.workers import WorkerId


def test_check_is_unhealthy_while_the_model_loads_and_when_the_heartbeat_is_stale(tmp_path: Path) -> None:
    """A status file judged later: loading is not healthy yet; a heartbeat older than its limit
    is a stuck consumer."""
    stats, me = Stats(), WorkerId.of_this_process()
    status_file = StatusFile(tmp_path, me)
    stats.loading()
    status_file.write(stats.snapshot(stale_after=5))
    loading = judge(read_all(tmp_path)[0])
    stats.model_loaded("tiny.en", "cpu", 2.0, 4)
    stats.running()
    status_file.write(stats.snapshot(stale_after=5))
    [record] = read_all(tmp_path)
    fresh, stale = judge(record), judge(record, now=time.time() + 60)

    assert (loading.alive, loading.healthy) == (True, False) and "loading" in loading.reason
    assert fresh.healthy and fresh.alive
    assert not stale.healthy and "heartbeat" in stale.reason and "stuck" in stale.reason
    assert check([record]) == (True, [f"{me.name}: healthy; idle; 0 waiting; 0 done, 0 failed"])
    assert check([record], now=time.time() + 60)[0] is False
    status_file.remove()
    status_file.write(stats.snapshot(stale_after=5))  # a late heartbeat after the clean stop
    assert read_all(tmp_path) == []


def test_another_machines_file_is_shown_but_never_judged_alive_or_removed_early(tmp_path: Path) -> None:
    """Replicas on other nodes share the state folder: their files are read, not checked, and
    removed only after a day without an update."""
    other = WorkerId("node-b-" + socket.gethostname(), 4242, 1)
    StatusFile(tmp_path, other).write(Stats().snapshot(stale_after=120))
    [record] = read_all(tmp_path)
    assert judge(record).alive is None
    assert check([record])[0] is False  # nothing runs on *this* machine
    assert forget_dead(tmp_path) == []
    old = time.time() - 2 * 24 * 3600
    os.utime(record["file"], (old, old))
    assert forget_dead(tmp_path) == [other.name]


def test_this_containers_file_from_before_a_restart_is_forgotten_once_stale(tmp_path: Path) -> None:
    """Same host name, another pid namespace (a restarted container): removed once its file is
    older than its heartbeat limit, kept while it could still be a live neighbour's."""
    StatusFile(tmp_path, WorkerId(socket.gethostname(), 1, 123)).write(Stats().snapshot(stale_after=120))
    [record] = read_all(tmp_path)
    record["pid_namespace"] = "pid:[1]"  # as if written in another pid namespace
    Path(record["file"]).write_text(json.dumps(record))
    assert judge(read_all(tmp_path)[0]).alive is None
    assert forget_dead(tmp_path) == []
    old = time.time() - 121
    os.utime(record["file"], (old, old))
    assert forget_dead(tmp_path) == [record["worker"]]


def test_files_the_inbox_never_takes_are_counted_in_every_report(tmp_path: Path) -> None:
    """The one count (Stats) in the status line, the status file's text and /metrics; none: no word."""
    stats = Stats()
    stats.waiting(3, {})
    stats.ignored_in_inbox(2)
    snapshot = stats.snapshot(stale_after=120)
    assert "; 3 waiting, 2 ignored; 0 done" in describe(snapshot)
    record = {"worker": "w", "host": "elsewhere", "pid": 1, **snapshot}
    assert "  2 files in the inbox never taken (inbox.ignored in the log says why)" in render([record], tmp_path)
    registry = CollectorRegistry()
    registry.register(StatsCollector(stats, 120, "w"))
    samples = {s.name: s.value for family in text_string_to_metric_families(generate_latest(registry).decode())
               for s in family.samples}
    assert samples["transcribed_inbox_ignored"] == 2
    stats.ignored_in_inbox(0)
    assert "; 3 waiting; 0 done" in describe(stats.snapshot(stale_after=120))
    assert "never taken" not in render([{**record, **stats.snapshot(stale_after=120)}], tmp_path)
