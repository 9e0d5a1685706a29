"""Retention on real temp folders, with a clock that moves: the config keys, what an item is in
each folder, what goes by age and by size (the oldest first), what never goes (the inbox, a
library's media, a job whose moves are under way, files a pending hook names, what is not the
daemon's), removal and archive with the record last out and first in, a journal a crash left
finished by the next pass, and one pass at a time. A real crash (SIGKILL in the middle) is in
tests/integration/test_retention.py."""

from __future__ import annotations

import fcntl
import json
import os
import time
from pathlib import Path

import pytest

from transcribed.config import Config, load_config, parse_config, parse_size
from transcribed.errors import ConfigError
from transcribed.retention import Keeper
from transcribed.retention.carry import JOURNAL_FILE, RETENTION_FOLDER
from transcribed.retention.items import in_use, items_of

DAY = 86400.0


class Clock:
    """Time that the test moves, from the real now (the files' own times are real)."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def days(self, count: float) -> None:
        self.now += count * DAY


def _config(tmp_path: Path, retention: dict, libraries: list | None = None) -> Config:
    text = {"folders": {"inbox": "inbox", "outbox": "outbox", "done": "done", "failed": "failed",
                        "state": "state"}, "retention": retention, "libraries": libraries or []}
    (tmp_path / "c.yaml").write_text(json.dumps(text))
    config = load_config(tmp_path / "c.yaml")
    for folder in ("inbox", "outbox", "done", "failed", "state"):
        (tmp_path / folder).mkdir(exist_ok=True)
    return config


def _write(path: Path, size: int = 10, landed: float | None = None) -> Path:
    """A file of `size` bytes. It lands now (its ctime); `landed` in the test clock's future
    makes it land then (an item's time is the later of its ctime and mtime)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)
    if landed is not None:
        os.utime(path, (landed, landed))
    return path


def _job(tmp_path: Path, stem: str, size: int = 10, landed: float | None = None) -> None:
    """What a done job leaves: its source in done/, its results and log in the outbox."""
    _write(tmp_path / "done" / f"{stem}.wav", size, landed)
    for suffix in (".json", ".srt", ".log.jsonl"):
        _write(tmp_path / "outbox" / f"{stem}{suffix}", size, landed)


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


class TestConfig:
    def test_off_by_default(self, tmp_path: Path) -> None:
        config = parse_config({})
        assert not config.retention.active
        assert Keeper(config).policies == {}

    @pytest.mark.parametrize(("value", "size"), [(1000, 1000), ("500 MB", 500 * 10**6), ("2 GiB", 2 * 2**30),
                                                 ("1.5TB", 1_500_000_000_000), ("64kib", 65536)])
    def test_sizes_with_their_units(self, value: int | str, size: int) -> None:
        assert parse_size(value, "k") == size

    @pytest.mark.parametrize(("retention", "message"), [
        ({"done": "remove"}, "retention.done: expected a mapping or one of delete"),
        ({"outbox": {"max_size": "2 GX"}}, "retention.outbox.max_size: expected bytes or a size"),
        ({"outbox": {"max_size": 0}}, "retention.outbox.max_size: expected a size above 0"),
        ({"failed": {"max_age_days": 0}}, "retention.failed.max_age_days: expected a number above 0"),
        ({"failed": {"archive": "/x"}}, "retention.failed.archive: set, but neither"),
        ({"state": {"max_age_days": 1, "maximum": 2}}, "retention.state.maximum: unknown key"),
        ({"check_seconds": 0}, "retention.check_seconds: expected a number above 0"),
    ])
    def test_values_that_cannot_work_are_refused_naming_the_key(self, retention: dict, message: str) -> None:
        with pytest.raises(ConfigError) as caught:
            parse_config({"retention": retention})
        assert message in str(caught.value)

    @pytest.mark.parametrize("archive", ["inbox/old", "outbox", "state/archive", "media/old"])
    def test_an_archive_inside_the_daemons_folders_or_a_library_is_refused(self, tmp_path: Path,
                                                                           archive: str) -> None:
        with pytest.raises(ConfigError, match="retention.done.archive: .* overlaps"):
            _config(tmp_path, {"done": {"max_age_days": 1, "archive": archive}},
                    libraries=[{"path": "media"}])


def test_items_are_one_jobs_files_with_their_record_last(tmp_path: Path) -> None:
    config = _config(tmp_path, {})
    _write(tmp_path / "done/talks/a.mp3")
    _write(tmp_path / "done/talks/a.mp3.yaml")
    for name in ("talks/a.json", "talks/a.srt", "talks/a.log.jsonl", "talks/a.2.json", "talks/a.2.log.jsonl"):
        _write(tmp_path / "outbox" / name)
    _write(tmp_path / "outbox/.a.json.1f2e.tmp")  # a copy in progress: no one's item yet
    _write(tmp_path / "outbox/readme.md")  # not a result: not the daemon's
    for name in ("b.wav", "b.wav.log.jsonl", "b.wav.error.json", "c.wav.error.json", "orphan.wav"):
        _write(tmp_path / "failed" / name)
    _write(tmp_path / "state/hooks/delivered/j1.json")
    _write(tmp_path / "state/hooks/gave_up/j2.json")
    _write(tmp_path / "state/library/failed/abc.error.json")
    _write(tmp_path / "state/library/failed/abc.log.jsonl")
    _write(tmp_path / "state/library/ledger.jsonl")
    _write(tmp_path / "state/work/w/j/job.json")

    def names(folder: str) -> dict[str, list[str]]:
        return {i.name: [str(f.relative_to(tmp_path)) for f in i.files] for i in items_of(folder, config)}

    assert names("done") == {"talks/a.mp3": ["done/talks/a.mp3", "done/talks/a.mp3.yaml"]}
    assert names("outbox") == {
        "talks/a.*": ["outbox/talks/a.json", "outbox/talks/a.srt", "outbox/talks/a.log.jsonl"],
        "talks/a.2.*": ["outbox/talks/a.2.json", "outbox/talks/a.2.log.jsonl"]}
    assert names("failed") == {
        "b.wav": ["failed/b.wav", "failed/b.wav.log.jsonl", "failed/b.wav.error.json"],
        "c.wav": ["failed/c.wav.error.json"]}
    assert names("state") == {
        "hooks/delivered/j1.json": ["state/hooks/delivered/j1.json"],
        "hooks/gave_up/j2.json": ["state/hooks/gave_up/j2.json"],
        "library/failed/abc": ["state/library/failed/abc.log.jsonl", "state/library/failed/abc.error.json"]}


def test_by_age_nothing_goes_until_its_day_then_the_old_go_and_the_young_stay(tmp_path: Path) -> None:
    clock = Clock()
    config = _config(tmp_path, {"done": {"max_age_days": 30}, "outbox": {"max_age_days": 30}})
    keeper = Keeper(config, clock=clock)
    _job(tmp_path, "old")
    clock.days(20)
    assert keeper.plan() == {"done": [], "outbox": []}
    os.utime(tmp_path / "done/old.wav", (clock.now - 40 * DAY,) * 2)  # a recording's own old mtime
    assert keeper.plan() == {"done": [], "outbox": []}, "an mtime is not when it landed"
    _job(tmp_path, "new", landed=clock.now)
    clock.days(10.5)  # old: 30.5 days; new: 10.5
    summary = keeper.run_pass()
    assert summary is not None and summary["items"] == {"done": 1, "outbox": 1}
    assert _files(tmp_path / "done") == ["new.wav"]
    assert _files(tmp_path / "outbox") == ["new.json", "new.log.jsonl", "new.srt"]
    clock.days(20)
    keeper.run_pass()
    assert _files(tmp_path / "done") == [] and _files(tmp_path / "outbox") == []
    assert (tmp_path / "done").is_dir() and (tmp_path / "outbox").is_dir(), "the roots stay"


def test_by_size_the_oldest_go_until_the_folder_fits(tmp_path: Path) -> None:
    """Four jobs of 30 bytes in the outbox, a day apart, 65 bytes allowed: the two oldest go."""
    clock = Clock()
    config = _config(tmp_path, {"outbox": {"max_size": 65}})
    for n in range(4):
        _job(tmp_path, f"job{n}", landed=clock.now)
        clock.days(1)
    chosen = Keeper(config, clock=clock).plan()["outbox"]
    assert [(v.item.name, v.rule) for v in chosen] == [("job0.*", "size"), ("job1.*", "size")]
    Keeper(config, clock=clock).run_pass()
    assert _files(tmp_path / "outbox") == sorted(f"job{n}{s}" for n in (2, 3)
                                                 for s in (".json", ".log.jsonl", ".srt"))


def test_what_is_in_use_never_goes(tmp_path: Path) -> None:
    """A job whose plan is on disk (its moves under way), and files a pending hook delivery names,
    stay whatever their age; the inbox and a library's media are never looked at."""
    clock = Clock()
    config = _config(tmp_path, {"done": "delete", "outbox": {"max_age_days": 1}},
                     libraries=[{"path": "media"}])
    _job(tmp_path, "moving")
    _job(tmp_path, "hooked")
    _job(tmp_path, "free")
    _write(tmp_path / "inbox/waiting.wav")
    _write(tmp_path / "media/film.mkv")
    plan = tmp_path / "state/work/w.1.2/job1/plan.json"
    plan.parent.mkdir(parents=True)
    plan.write_text(json.dumps({"version": 2, "moves": [
        {"from": "staging/moving.json", "to": ["outbox", "moving.json"]},
        {"from": "src/moving.wav", "to": ["done", "moving.wav"]}]}))
    record = tmp_path / "state/hooks/w.1.2/job2.json"
    record.parent.mkdir(parents=True)
    record.write_text(json.dumps({"places": {"source": {"root": "done", "relative": "hooked.wav"},
                                             "results": [{"format": "srt", "root": "outbox",
                                                          "relative": "hooked.srt"}]}}))
    assert {p.name for p in in_use(config)} == {"moving.json", "moving.wav", "hooked.wav", "hooked.srt"}
    clock.days(5)
    Keeper(config, clock=clock).run_pass()
    assert _files(tmp_path / "done") == ["hooked.wav", "moving.wav"]
    assert _files(tmp_path / "outbox") == sorted(
        f"{stem}{s}" for stem in ("hooked", "moving") for s in (".json", ".log.jsonl", ".srt"))
    assert _files(tmp_path / "inbox") == ["waiting.wav"] and _files(tmp_path / "media") == ["film.mkv"]
    record.unlink()  # delivered
    plan.unlink()  # finished
    Keeper(config, clock=clock).run_pass()
    assert _files(tmp_path / "done") == [] and _files(tmp_path / "outbox") == []


def test_an_archive_keeps_the_layout_never_overwrites_and_renames_an_item_whole(tmp_path: Path) -> None:
    clock = Clock()
    config = _config(tmp_path, {"failed": {"max_age_days": 1, "archive": "archive/failed"}})
    for name in ("talks/b.wav", "talks/b.wav.log.jsonl", "talks/b.wav.error.json"):
        _write(tmp_path / "failed" / name, 5)
    _write(tmp_path / "archive/failed/talks/b.wav", 3)  # someone's file of that name
    clock.days(2)
    Keeper(config, clock=clock).run_pass()
    assert _files(tmp_path / "failed") == []
    assert _files(tmp_path / "archive/failed") == ["talks/b.2.wav", "talks/b.2.wav.error.json",
                                                   "talks/b.2.wav.log.jsonl", "talks/b.wav"]
    assert (tmp_path / "archive/failed/talks/b.wav").stat().st_size == 3, "never overwritten"


def test_a_journal_left_by_a_crash_is_finished_by_the_next_pass(tmp_path: Path) -> None:
    """The journal lists an item half-removed (its results gone, its log still there, as the
    record is removed last): the next pass finishes it before choosing anything."""
    clock = Clock()
    config = _config(tmp_path, {"outbox": {"max_age_days": 100}})
    _job(tmp_path, "half")
    _job(tmp_path, "young")
    files = [str(tmp_path / "outbox" / f"half{s}") for s in (".json", ".srt", ".log.jsonl")]
    journal = tmp_path / "state" / RETENTION_FOLDER / JOURNAL_FILE
    journal.parent.mkdir(parents=True)
    journal.write_text(json.dumps({"version": 1, "entries": [{
        "folder": "outbox", "name": "half.*", "rule": "age", "reason": "test", "age_days": 101,
        "bytes": 30, "files": files, "record": files[-1]}]}))
    Path(files[0]).unlink()  # the crash came after the first file
    summary = Keeper(config, clock=clock).run_pass()
    assert summary is not None and summary["resumed"] == 1
    assert _files(tmp_path / "outbox") == ["young.json", "young.log.jsonl", "young.srt"]
    assert not journal.exists()


def test_one_pass_at_a_time_among_daemons(tmp_path: Path) -> None:
    config = _config(tmp_path, {"done": "delete"})
    lock = tmp_path / "state" / RETENTION_FOLDER / "lock"
    lock.parent.mkdir(parents=True)
    with lock.open("w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        assert Keeper(config).run_pass() is None
    assert Keeper(config).run_pass() is not None


def test_dry_run_lists_what_would_go_and_touches_nothing(tmp_path: Path) -> None:
    clock = Clock()
    config = _config(tmp_path, {"done": {"max_age_days": 7, "archive": "archive"}})
    _job(tmp_path, "a")
    clock.days(8)
    keeper = Keeper(config, clock=clock)
    (line,) = keeper.describe(keeper.plan())
    assert line.startswith("done/a.wav: 10 B, 8.0 days old (retention.done.max_age_days: 7): moved to ")
    assert _files(tmp_path / "done") == ["a.wav"]
