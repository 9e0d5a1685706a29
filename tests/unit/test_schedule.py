"""Quiet hours (`schedule.quiet`), the pause file (`transcribed pause`), and the gate that asks
both: on a clock the test moves, in a zone the test names."""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from transcribed.config import parse_config
from transcribed.config.schedule import QuietHours, Schedule
from transcribed.consumer.gate import PAUSED_UNLOAD_SECONDS, Gate, PausedNow
from transcribed.errors import ConfigError
from transcribed.operations.pause_command import parse_until
from transcribed.operations.stats import Stats
from transcribed.operations.status_line import describe, until_words
from transcribed.spool.pause import Pause, PauseWatch, pause_path, read_pause, remove_pause, write_pause

BERLIN = ZoneInfo("Europe/Berlin")


def at(text: str, zone: ZoneInfo = BERLIN) -> float:
    """A moment given as local wall-clock time in `zone` (2025-03-03 is a Monday)."""
    return datetime.fromisoformat(text).replace(tzinfo=zone).timestamp()


def local(moment: float | None, zone: ZoneInfo = BERLIN) -> str | None:
    return None if moment is None else datetime.fromtimestamp(moment, zone).strftime("%a %H:%M")


def hours(*windows: str, zone: str = "Europe/Berlin") -> QuietHours:
    return QuietHours(Schedule(quiet=windows, timezone=zone))


class TestQuietHours:
    """A window says when no job starts; `until` is when the quiet spell holding a moment ends."""

    def test_an_office_day_is_quiet_from_eight_to_six(self) -> None:
        quiet = hours("08:00-18:00")
        assert local(quiet.until(at("2025-03-03T09:30"))) == "Mon 18:00"
        assert quiet.until(at("2025-03-03T07:59")) is None
        assert quiet.until(at("2025-03-03T18:00")) is None  # the end is not quiet any more
        assert local(quiet.until(at("2025-03-03T08:00"))) == "Mon 18:00"

    def test_a_window_across_midnight_belongs_to_the_day_it_starts(self) -> None:
        quiet = hours("Fri 22:00-06:00")
        assert local(quiet.until(at("2025-03-07T23:00"))) == "Sat 06:00"
        assert local(quiet.until(at("2025-03-08T05:59"))) == "Sat 06:00"
        assert quiet.until(at("2025-03-06T23:00")) is None  # Thursday night is not quiet

    def test_weekdays_and_weekends_differ(self) -> None:
        quiet = hours("Mon-Fri 08:00-18:00", "Sat,Sun 10:00-12:00")
        assert local(quiet.until(at("2025-03-05T12:00"))) == "Wed 18:00"
        assert quiet.until(at("2025-03-08T09:00")) is None
        assert local(quiet.until(at("2025-03-09T11:00"))) == "Sun 12:00"

    def test_windows_that_touch_make_one_spell(self) -> None:
        """08:00-12:00 and 12:00-18:00 end at 18:00; Sun 22:00-24:00 with Mon 00:00-06:00 wraps the week."""
        assert local(hours("08:00-12:00", "12:00-18:00").until(at("2025-03-03T09:00"))) == "Mon 18:00"
        assert local(hours("Sun 22:00-24:00", "Mon 00:00-06:00").until(at("2025-03-09T23:00"))) == "Mon 06:00"

    def test_the_zone_decides_the_local_time(self) -> None:
        """The same moment is quiet in Berlin's office hours and not in New York's."""
        moment = at("2025-03-03T09:00")
        assert hours("08:00-18:00", zone="Europe/Berlin").until(moment) is not None
        assert hours("08:00-18:00", zone="America/New_York").until(moment) is None

    def test_daylight_saving_time_moves_the_end_in_utc_not_on_the_wall(self) -> None:
        """On the night the clocks go forward (2025-03-30 in Berlin), 22:00-06:00 still ends at
        06:00 on the wall: six hours after 23:00, not the seven the wall clock shows."""
        start = at("2025-03-29T23:00")
        end = hours("22:00-06:00").until(start)
        assert local(end) == "Sun 06:00" and end is not None and end - start == 6 * 3600

    def test_the_system_zone_is_the_default(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """timezone null: the system's local time (TZ): 09:00 in Tokyo is quiet, 09:00 in Berlin
        (17:00 in Tokyo) is not."""
        import time

        monkeypatch.setenv("TZ", "Asia/Tokyo")
        time.tzset()
        try:
            quiet = QuietHours(Schedule(quiet=("08:00-10:00",)))
            assert quiet.until(at("2025-03-03T09:00", ZoneInfo("Asia/Tokyo"))) is not None
            assert quiet.until(at("2025-03-03T09:00", BERLIN)) is None
        finally:
            monkeypatch.undo()
            time.tzset()

    @pytest.mark.parametrize(("window", "message"), [
        ("8-18", "expected a window such as"),
        ("08:00-08:00", "starts and ends at the same time"),
        ("25:00-26:00", "25:00 is no time of day"),
        ("Mon-Fry 08:00-18:00", "unknown day"),
        ("24:00-06:00", "a window starts at 00:00 to 23:59"),
    ])
    def test_a_bad_window_is_refused_naming_it(self, window: str, message: str) -> None:
        with pytest.raises(ConfigError, match=rf"schedule\.quiet\[0\]: .*{message}"):
            parse_config({"schedule": {"quiet": [window]}})

    def test_windows_that_leave_no_time_to_work_are_refused(self) -> None:
        for windows in (["00:00-24:00"], ["06:00-22:00", "22:00-06:00"]):
            with pytest.raises(ConfigError, match="cover the whole week"):
                parse_config({"schedule": {"quiet": windows}})
        parse_config({"schedule": {"quiet": ["06:00-22:00", "Mon-Sat 22:00-06:00"]}})  # Sunday night works

    def test_an_unknown_zone_is_refused(self) -> None:
        with pytest.raises(ConfigError, match="schedule.timezone: unknown time zone 'Mars/Olympus'"):
            parse_config({"schedule": {"quiet": ["08:00-18:00"], "timezone": "Mars/Olympus"}})


class TestThePauseFile:
    """What `transcribed pause` writes and every daemon reads."""

    def test_written_read_and_removed(self, tmp_path: Path) -> None:
        pause = Pause(since=100.0, until=200.0, now=True, by="ann@nas", reason="games")
        write_pause(tmp_path, pause)
        assert read_pause(pause_path(tmp_path)) == pause
        assert json.loads(pause_path(tmp_path).read_text())["reason"] == "games"
        assert remove_pause(tmp_path) == pause and not pause_path(tmp_path).exists()
        assert remove_pause(tmp_path) is None

    def test_a_damaged_file_still_pauses_and_says_why(self, tmp_path: Path) -> None:
        pause_path(tmp_path).write_text("{not json")
        pause = read_pause(pause_path(tmp_path))
        assert pause is not None and pause.until is None and "cannot be read" in str(pause.reason)

    def test_a_daemon_sees_a_new_pause_once_it_changes(self, tmp_path: Path) -> None:
        clock = [0.0]
        watch = PauseWatch(tmp_path, every=1.0, clock=lambda: clock[0])
        assert watch.current(look_now=True) is None
        write_pause(tmp_path, Pause(since=1.0))
        assert watch.current(look_now=False) is None  # looked less than a second ago
        clock[0] = 1.5
        assert watch.current(look_now=False) == Pause(since=1.0)
        write_pause(tmp_path, Pause(since=2.0, reason="again"))
        os.utime(pause_path(tmp_path), ns=(10**18, 10**18))  # a coarse clock: the stamp changes anyway
        assert watch.current(look_now=True) == Pause(since=2.0, reason="again")
        remove_pause(tmp_path)
        assert watch.current(look_now=True) is None


class TestGate:
    """The consumer's question: may a job start now, and if not, why and until when."""

    def gate(self, tmp_path: Path, clock: list[float], **sections: dict) -> tuple[Gate, Stats]:
        config = parse_config({"folders": {"state": str(tmp_path)}, **sections})
        stats = Stats()
        return Gate(config, stats, clock=lambda: clock[0], monotonic=lambda: clock[0]), stats

    def test_quiet_hours_close_it_and_say_until_when(self, tmp_path: Path) -> None:
        clock = [at("2025-03-03T09:00")]
        gate, stats = self.gate(tmp_path, clock, schedule={"quiet": ["08:00-18:00"], "timezone": "Europe/Berlin"})
        state = gate.closed()
        assert state is not None and state.by == "schedule" and local(state.until) == "Mon 18:00"
        assert stats.pause is not None and stats.pause["by"] == "schedule"
        assert gate.seconds_left() == 9 * 3600
        clock[0] = at("2025-03-03T18:00")
        assert gate.closed() is None and stats.pause is None

    def test_a_pause_closes_it_until_resumed_or_its_end(self, tmp_path: Path) -> None:
        clock = [1000.0]
        gate, stats = self.gate(tmp_path, clock)
        write_pause(tmp_path, Pause(since=900.0, until=2000.0, by="ann@nas", reason="games"))
        state = gate.closed()
        assert state is not None and (state.by, state.until, state.asked_by) == ("pause", 2000.0, "ann@nas")
        clock[0] = 2000.0
        assert gate.closed() is None, "a pause with an end is over then, file or not"
        write_pause(tmp_path, Pause(since=2100.0))
        clock[0] = 2200.0
        assert gate.closed() is not None and gate.seconds_left() is None
        remove_pause(tmp_path)
        assert gate.closed() is None and stats.pause is None

    def test_a_pause_and_quiet_hours_end_with_the_later(self, tmp_path: Path) -> None:
        clock = [at("2025-03-03T09:00")]
        gate, _ = self.gate(tmp_path, clock, schedule={"quiet": ["08:00-18:00"], "timezone": "Europe/Berlin"})
        write_pause(tmp_path, Pause(since=clock[0], until=at("2025-03-03T10:00")))
        state = gate.closed()
        assert state is not None and state.by == "pause" and local(state.until) == "Mon 18:00"

    def test_now_gives_the_running_jobs_back_and_a_plain_pause_does_not(self, tmp_path: Path) -> None:
        clock = [1000.0]
        gate, _ = self.gate(tmp_path, clock)
        write_pause(tmp_path, Pause(since=1000.0))
        gate.give_back_now()  # the running job finishes
        write_pause(tmp_path, Pause(since=1001.0, now=True))
        clock[0] = 1002.0
        with pytest.raises(PausedNow):
            gate.give_back_now()

    def test_a_paused_daemon_unloads_after_the_idle_delay_or_a_minute(self, tmp_path: Path) -> None:
        assert self.gate(tmp_path, [0.0])[0].unload_after == PAUSED_UNLOAD_SECONDS
        assert self.gate(tmp_path, [0.0], model={"idle_unload_seconds": 300})[0].unload_after == 300


class TestWords:
    """What a person reads: STATUS=, `transcribed status`, and the command's times."""

    def test_the_status_line_says_paused_and_until_when(self) -> None:
        now = datetime(2025, 3, 3, 9, 0).timestamp()
        snapshot = {"jobs": {"done": 3, "failed": 0}, "state": "running", "current_file": "a.wav",
                    "queue_length": 2, "progress": {"percent": 40.0, "eta_s": None}, "current_for_s": 3,
                    "paused": {"by": "schedule", "until": datetime(2025, 3, 3, 18, 0).timestamp()}}
        assert until_words(snapshot["paused"]["until"], now) == "until 18:00"
        line = describe(snapshot)
        assert line.startswith("paused until") and "(quiet hours), finishing a.wav: 40 %" in line
        assert "2 waiting" in line
        assert until_words(None) == "until resumed"
        assert until_words(datetime(2025, 3, 5, 8, 0).timestamp(), now) == "until Wed 08:00"

    def test_until_and_for_are_read_as_people_write_them(self) -> None:
        now = datetime(2025, 3, 3, 9, 0).timestamp()
        assert parse_until(None, "90m", now) == now + 5400
        assert parse_until(None, "1h30m", now) == now + 5400
        assert parse_until("18:00", None, now) == datetime(2025, 3, 3, 18, 0).timestamp()
        assert parse_until("08:00", None, now) == datetime(2025, 3, 4, 8, 0).timestamp()  # tomorrow
        assert parse_until("2025-03-10T08:00", None, now) == datetime(2025, 3, 10, 8, 0).timestamp()
        assert parse_until(None, None, now) is None
        for until, duration, key in (("soon", None, "--until"), (None, "a while", "--for"),
                                     ("2020-01-01T00:00", None, "--until")):
            with pytest.raises(ConfigError, match=key):
                parse_until(until, duration, now)
