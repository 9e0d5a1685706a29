"""The daemon in the image, run the way the docs say: `podman run -v DATA:/data IMAGE`.

Each test starts its own container on an empty host folder and removes it at the end. The
inbox-to-outbox tests use the real default engine (tiny.en, bundled in the image); the stop
tests that need a job of a known length use the fake engine, which only replaces the model.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from tests.container.conftest import BuiltImage
from tests.container.podman import (
    DAEMON_COMMAND,
    JOB_TIMEOUT,
    START_TIMEOUT,
    Container,
    drop,
    files_in,
    transcribed,
)
from tests.support.corpus import Clip, word_error_rate
from tests.support.daemon import wait_until

FOLDERS = ["done", "failed", "inbox", "outbox", "state"]


def owners(folder: Path) -> set[tuple[int, int]]:
    return {(p.stat().st_uid, p.stat().st_gid) for p in [folder, *folder.rglob("*")]}


def test_the_daemon_runs_as_10001_and_turns_an_inbox_recording_into_a_transcript(
        image: BuiltImage, data: Path, recording: Clip) -> None:
    """Empty DATA: uid 10001 creates the folders; the real engine transcribes; logs are JSON."""
    with Container(image.name, ["--volume", f"{data}:/data"]) as daemon:
        daemon.wait_for("daemon.started", START_TIMEOUT)
        assert daemon.inspect("{{.Config.User}}") == "10001:10001"
        assert daemon.exec("stat", "-c", "%u:%g", "/proc/1").stdout.strip() == "10001:10001"
        assert sorted(p.name for p in data.iterdir()) == FOLDERS
        assert owners(data) == {(10001, 10001)}

        name = drop(recording, data, (10001, 10001))
        text = transcribed(data, name, daemon)
        assert word_error_rate(recording.reference, text, "en") < 0.3, text
        assert not (data / "inbox" / name).exists()
        assert files_in(data / "failed") == []
        daemon.wait_for("job.done", 30)
        events = daemon.events()  # fails on the first line that is not JSON
        assert len(events) == len(daemon.logs()) > 5
        assert {"daemon.starting", "model.loaded", "daemon.started", "job.done"} <= {
            e.get("event") for e in events}


def test_run_as_the_host_user_works_the_same_and_the_results_are_theirs(
        image: BuiltImage, data: Path, recording: Clip) -> None:
    """`--user UID:GID` (scripts/docker-run as a non-root user): results belong to that user."""
    user = (1234, 1234)
    os.chown(data, *user)
    with Container(image.name, ["--volume", f"{data}:/data", "--user", "1234:1234"]) as daemon:
        daemon.wait_for("daemon.started", START_TIMEOUT)
        name = drop(recording, data, user)
        text = transcribed(data, name, daemon)
        assert word_error_rate(recording.reference, text, "en") < 0.3, text
        daemon.wait_for("job.done", 30)
        assert owners(data) == {user}, sorted(owners(data))
        daemon.events()  # every line JSON here too


def test_the_health_check_is_unhealthy_while_the_model_loads_and_healthy_after(
        image: BuiltImage, data: Path) -> None:
    """The image's own HEALTHCHECK (`transcribed status --check`), run by `podman healthcheck run`."""
    with Container(image.name, ["--volume", f"{data}:/data"]) as daemon:
        assert json.loads(daemon.inspect("{{json .Config.Healthcheck.Test}}")) == [
            "CMD", "transcribed", "status", "--check"]
        daemon.wait_for("model.loading", START_TIMEOUT)
        verdict = daemon.healthcheck()
        loaded_before_the_verdict = daemon.has_logged("model.loaded") is not None
        assert verdict != "healthy"
        assert "unhealthy" in verdict
        assert not loaded_before_the_verdict, "the model loaded before the check ended: inconclusive"

        daemon.wait_for("daemon.started", START_TIMEOUT)
        wait_until(lambda: daemon.healthcheck() == "healthy", 60, "a healthy check", interval=1)


def fake_engine(delay_s: float) -> tuple[list[str], list[str]]:
    """podman run arguments and command for the daemon with the fake engine taking `delay_s`."""
    return (["--env", f"TRANSCRIBED_FAKE={json.dumps({'delay': delay_s})}"],
            [*DAEMON_COMMAND, "--engine", "fake"])


@pytest.mark.parametrize(("delay_s", "outcome"), [(6, "finished"), (300, "back in the inbox")])
def test_podman_stop_during_a_job_exits_0_and_loses_nothing(
        image: BuiltImage, data: Path, recording: Clip, delay_s: float, outcome: str) -> None:
    """A job shorter than the 30 s grace finishes; a longer one goes back; exit code 0 both ways."""
    args, command = fake_engine(delay_s)
    with Container(image.name, ["--volume", f"{data}:/data", *args], command) as daemon:
        daemon.wait_for("daemon.started", START_TIMEOUT)
        name = drop(recording, data, (10001, 10001))
        daemon.wait_for("job.started", JOB_TIMEOUT)
        code, seconds = daemon.stop(timeout=45)
        assert code == 0, "\n".join(daemon.logs()[-20:])
        assert seconds < 40, f"the stop took {seconds:.0f} s: SIGKILLed after the timeout?"
        assert daemon.has_logged("daemon.stopped")
        where = {folder: files_in(data / folder) for folder in ("inbox", "done", "failed")}
        if outcome == "finished":
            assert where == {"inbox": [], "done": [name], "failed": []}
            assert (data / "outbox" / f"{Path(name).stem}.txt").exists()
        else:
            assert where == {"inbox": [name], "done": [], "failed": []}


def test_podman_stop_during_model_loading_exits_0_promptly(image: BuiltImage, data: Path) -> None:
    """SIGTERM while the model loads: the daemon (PID 1) stops cleanly, not SIGKILLed at 45 s."""
    with Container(image.name, ["--volume", f"{data}:/data"]) as daemon:
        daemon.wait_for("model.loading", START_TIMEOUT)
        assert not daemon.has_logged("model.loaded"), "loaded already: too quick to test here"
        code, seconds = daemon.stop(timeout=45)
        assert (code, daemon.has_logged("daemon.stopped") is not None) == (0, True), (
            f"exit {code} after {seconds:.0f} s:\n" + "\n".join(daemon.logs()[-10:]))
        assert seconds < 30, f"the stop took {seconds:.0f} s"
