"""A named model from a hub, for real: the daemon downloads `large-v3-turbo` by its name from a
local server that speaks the hub's file protocol (tests/support/hub.py serves the bundled tiny.en
as mobiuslabsgmbh/faster-whisper-large-v3-turbo), over HF_ENDPOINT, as it would from the hub.

The daemon runs the fake engine told to find its model first (`find_model`), so each start
downloads, checks and hands on the model exactly as the real engine's start does, without
loading WhisperX (tests/e2e/test_model_download_whisperx.py loads what was downloaded).
The hub offers Xet storage for model.bin as the hub does; the daemon downloads over HTTP.
"""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.daemon import DaemonProcess, Folders, wait_until
from tests.support.hub import (
    NAMED_MODEL,
    LocalHub,
    blob_names,
    local_hub,
    partial_bytes,
    storage,
    wait_for_partial,
)
from transcribed import doctor
from transcribed.config import load_config

START_TIMEOUT = 120


def write_config(folders: Folders, **model: Any) -> Path:
    """The named model, downloaded into `models/` beside the config; progress twice a second."""
    return folders.write_config(model={"name": NAMED_MODEL, "language": "en", "download_dir": "models",
                                       **model}, log={"progress_seconds": 0.5})


def models(folders: Folders) -> Path:
    return folders.root / "models"


def daemon_for(folders: Folders, hub: LocalHub) -> DaemonProcess:
    """The daemon with the fake engine, which finds (downloads) its model as the real one does."""
    return DaemonProcess(folders.config, engine="fake", env={
        **hub.env(folders.root / "hf-home"), "TRANSCRIBED_FAKE": json.dumps({"find_model": True})})


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def named(daemon: DaemonProcess, event: str) -> list[dict[str, Any]]:
    return [e for e in daemon.events() if e.get("event") == event]


def failed_start(daemon: DaemonProcess) -> str:
    """Wait for a start that must fail: exit code 1, and the error it logged."""
    assert daemon.process is not None
    assert daemon.process.wait(timeout=START_TIMEOUT) == 1, daemon.stderr()[-2000:]
    return str(wait_until(lambda: named(daemon, "daemon.error"), 10, "daemon.error")[0]["error"])


def model_check(folders: Folders, hub: LocalHub, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The doctor's model line (in this process, no sample), with the daemon's HF_ENDPOINT."""
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    report = doctor.diagnose(load_config(folders.config), sample=False)
    check = next(c for c in report.checks if c.name == "model")
    return {"status": check.status, "detail": check.detail, **check.data}


def snapshot_of(folders: Folders, hub: LocalHub) -> Path:
    return storage(models(folders), hub.repo_id) / "snapshots" / hub.commit


def test_the_first_start_downloads_the_named_model_with_progress_and_the_doctor_says_from_where(
        folders: Folders, monkeypatch: pytest.MonkeyPatch) -> None:
    """model.downloading names the repo, commit and endpoint; progress events carry bytes, total,
    percent and rate, rising; model.downloaded; what is handed on is the checked snapshot."""
    write_config(folders)
    with local_hub(rate=15_000_000) as hub:  # 5 s or more for model.bin's 75 MB
        before = model_check(folders, hub, monkeypatch)
        assert before["status"] == "warn" and "not in" in before["detail"], before
        assert before["repo_id"] == hub.repo_id and before["endpoint"] == hub.url
        with daemon_for(folders, hub) as daemon:
            started = named(daemon, "model.downloading")[0]
            assert (started["repo_id"], started["commit"], started["endpoint"]) == (
                hub.repo_id, hub.commit, hub.url)
            assert started["resumed_bytes"] == 0 and started["xet"] is False
            total = started["total_bytes"]
            progress = named(daemon, "model.download_progress")
            assert len(progress) >= 2, progress
            assert all(p["total"] == total and 0 <= p["percent"] <= 100 for p in progress)
            assert [p["bytes"] for p in progress] == sorted(p["bytes"] for p in progress)
            assert any(p["bytes_per_s"] > 0 for p in progress)
            done = named(daemon, "model.downloaded")[0]
            assert done["bytes"] == total and done["fetched_bytes"] == total
            assert named(daemon, "model.loading")[0]["path"] == str(snapshot_of(folders, hub))
            resolved = named(daemon, "model.resolved")[0]
            assert resolved["source"] == "downloaded" and resolved["endpoint"] == hub.url
            assert daemon.stop() == 0
        assert [r.status for r in hub.model_bin_gets()] == [200]  # over HTTP, not Xet
        after = model_check(folders, hub, monkeypatch)
    assert sha256(snapshot_of(folders, hub) / "model.bin") == hub.model_bin_sha256
    assert not [n for n in blob_names(models(folders), hub.repo_id) if n.endswith(".incomplete")]
    assert after["status"] == "ok" and after["source"] == "cached", after
    assert (after["repo_id"], after["commit"], after["endpoint"]) == (hub.repo_id, hub.commit, hub.url)
    assert after["path"] == str(snapshot_of(folders, hub))
    assert hub.url in after["detail"] and str(snapshot_of(folders, hub)) in after["detail"]


@pytest.mark.parametrize("stop", [signal.SIGKILL, signal.SIGTERM], ids=["killed", "stopped"])
def test_a_start_ended_half_way_leaves_a_part_the_next_start_resumes(
        folders: Folders, monkeypatch: pytest.MonkeyPatch, stop: signal.Signals) -> None:
    """SIGKILL (or systemd's SIGTERM) while model.bin downloads: nothing is loaded, no ref names
    the half snapshot, the doctor sees the part; the next start asks for the rest only."""
    write_config(folders)
    with local_hub(rate=4_000_000) as hub:  # 19 s or more for model.bin
        first = daemon_for(folders, hub).start(wait=False)
        try:
            first.wait_for("model.downloading", timeout=START_TIMEOUT)
            wait_for_partial(models(folders), hub.repo_id, hub.model_bin_size // 3, timeout=60)
            assert first.process is not None
            first.process.send_signal(stop)
            assert first.process.wait(timeout=30) == (0 if stop == signal.SIGTERM else -signal.SIGKILL)
        finally:
            first.kill()
        assert not named(first, "model.loading") and not named(first, "model.downloaded")
        left = partial_bytes(models(folders), hub.repo_id)
        assert 0 < left < hub.model_bin_size
        assert not (storage(models(folders), hub.repo_id) / "refs" / "main").exists()
        check = model_check(folders, hub, monkeypatch)
        assert check["status"] == "warn" and check["partial_bytes"] == left, check

        hub.server.rate = None
        with daemon_for(folders, hub) as second:
            assert named(second, "model.downloading")[0]["resumed_bytes"] >= left
            assert named(second, "model.downloaded")[0]["fetched_bytes"] < hub.model_bin_size
            assert second.stop() == 0
        resumed = hub.model_bin_gets()[-1]
        assert (resumed.range, resumed.status) == (f"bytes={left}-", 206)
    assert sha256(snapshot_of(folders, hub) / "model.bin") == hub.model_bin_sha256
    assert partial_bytes(models(folders), hub.repo_id) == 0


def test_a_connection_that_breaks_off_is_resumed_in_the_same_start(folders: Folders) -> None:
    """The hub drops every response after 40 MB: each try resumes where the last one broke off."""
    write_config(folders)
    with local_hub(stop_after=40_000_000) as hub, daemon_for(folders, hub) as daemon:
        assert named(daemon, "model.download_retry")
        assert daemon.stop() == 0
    gets = hub.model_bin_gets()
    assert len(gets) >= 2 and all(g.cut for g in gets[:-1]) and not gets[-1].cut
    assert all(g.status == 206 and g.range for g in gets[1:])
    assert sha256(snapshot_of(folders, hub) / "model.bin") == hub.model_bin_sha256


def test_a_model_that_arrives_damaged_is_never_loaded(folders: Folders) -> None:
    """The hub serves model.bin with a byte flipped (the right size): it is fetched twice, deleted
    twice, the start fails saying so; once the hub serves it right, the next start downloads it."""
    write_config(folders)
    with local_hub(corrupt={"model.bin"}) as hub:
        daemon = daemon_for(folders, hub).start(wait=False)
        error = failed_start(daemon)
        assert "model.bin did not match the hash" in error and "twice" in error, error
        assert [e["file"] for e in named(daemon, "model.corrupt")] == ["model.bin", "model.bin"]
        assert not named(daemon, "model.loading") and not named(daemon, "daemon.started")
        assert hub.model_bin_sha256 not in blob_names(models(folders), hub.repo_id)

        hub.server.corrupt.clear()
        with daemon_for(folders, hub) as daemon:
            assert named(daemon, "model.downloaded")
            assert daemon.stop() == 0
    assert sha256(snapshot_of(folders, hub) / "model.bin") == hub.model_bin_sha256


def test_a_restart_with_the_hub_gone_uses_the_cache_and_never_a_damaged_one(folders: Folders) -> None:
    """After one download the hub goes away: the next start uses the cache without asking it. A
    byte flipped in the cached model.bin is found before loading: the bad blob is deleted and the
    start fails (nothing to download it from); with the hub back, only model.bin comes again."""
    write_config(folders)
    with local_hub() as hub:
        with daemon_for(folders, hub) as daemon:
            assert daemon.stop() == 0
        hub.server.stop()
        asked = len(hub.server.requests)
        with daemon_for(folders, hub) as daemon:
            resolved = named(daemon, "model.resolved")[0]
            assert resolved["source"] == "cached" and resolved["endpoint"] == hub.url
            assert resolved["commit"] == hub.commit and not named(daemon, "model.downloading")
            assert daemon.stop() == 0
        assert len(hub.server.requests) == asked

        blob = storage(models(folders), hub.repo_id) / "blobs" / hub.model_bin_sha256
        with blob.open("r+b") as fh:  # the same size, one byte different
            fh.seek(4096)
            byte = fh.read(1)
            fh.seek(4096)
            fh.write(bytes([byte[0] ^ 0x01]))
        daemon = daemon_for(folders, hub).start(wait=False)
        error = failed_start(daemon)
        assert "could not be downloaded from " + hub.url in error and "ConnectionError" in error, error
        assert named(daemon, "model.corrupt")[0]["file"] == "model.bin"
        assert not named(daemon, "model.loading") and not blob.exists()

        hub.server.start()
        with daemon_for(folders, hub) as daemon:
            assert named(daemon, "model.downloaded")[0]["fetched_bytes"] == hub.model_bin_size
            assert daemon.stop() == 0
    assert sha256(blob) == hub.model_bin_sha256


def test_a_repo_the_hub_does_not_have_stops_the_start_naming_it(folders: Folders) -> None:
    """model.name as an owner/name the hub answers 404 for: exit 1, the repo and the hub named."""
    write_config(folders, name="nobody/no-such-model")
    with local_hub() as hub:
        error = failed_start(daemon_for(folders, hub).start(wait=False))
    assert "'nobody/no-such-model'" in error and hub.url in error and "RepositoryNotFoundError" in error


def test_the_bundled_default_asks_no_hub(folders: Folders) -> None:
    """model.name: tiny.en (the default) is the bundled copy, whatever HF_ENDPOINT says."""
    folders.write_config()
    with local_hub() as hub:
        with daemon_for(folders, hub) as daemon:
            resolved = named(daemon, "model.resolved")[0]
            assert resolved["source"] == "bundled" and resolved["model"] == "tiny.en"
            assert daemon.stop() == 0
        assert hub.server.requests == []


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 16 MB tmpfs of its own: smaller than model.bin."""
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount_point)],
                             capture_output=True, text=True, check=False)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs to fill up: {mounted.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def test_a_full_disk_stops_the_download_at_once_saying_how_much_room_it_needs(
        folders: Folders, small_disk: Path) -> None:
    """model.download_dir on a disk too small for model.bin: no retry, the folder named."""
    write_config(folders, download_dir=str(small_disk))
    with local_hub() as hub:
        daemon = daemon_for(folders, hub).start(wait=False)
        error = failed_start(daemon)
    assert "No space left" in error and f"{small_disk} must be writable with" in error, error
    assert not named(daemon, "model.download_retry") and not named(daemon, "model.loading")
