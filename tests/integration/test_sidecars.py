"""Per-file options delivered beside the audio (`<name>.yaml`), with the daemon and the fake engine."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from tests.support.consumer import drop, make_config, make_consumer, process_next
from tests.support.corpus import corpus_dir
from tests.support.daemon import DaemonProcess, Folders, wait_until
from transcribed.engine.fake import FakeEngine

pytestmark = pytest.mark.usefixtures("corpus")

SHORT = corpus_dir() / "cmu_sphinx" / "goforward.wav"


def _deliver(folders: Folders, name: str, sidecar: str, suffix: str = ".yaml") -> None:
    """The sidecar first, then the audio (renamed into place), as a careful uploader does."""
    (folders.inbox / f"{name}{suffix}").write_text(sidecar)
    shutil.copy(SHORT, folders.inbox / f".{name}.part")
    (folders.inbox / f".{name}.part").rename(folders.inbox / name)


def test_a_sidecar_sets_the_job_options_and_travels_to_done(folders: Folders) -> None:
    """talk.wav.yaml asks for json and srt only, in German: so it is, and it lands beside talk.wav."""
    with DaemonProcess(folders.config, engine="fake") as daemon:
        _deliver(folders, "talk.wav", "language: de\nformats: [json, srt]\ninitial_prompt: Köln\n")
        wait_until(lambda: (folders.done / "talk.wav").exists(), 30, "talk.wav in done/")
        daemon.wait_for("job.moved")
    assert folders.files(folders.done) == ["talk.wav", "talk.wav.yaml"]
    assert folders.files(folders.outbox) == ["talk.json", "talk.log.jsonl", "talk.srt"]
    options = json.loads((folders.outbox / "talk.json").read_text())["transcribed"]["options"]
    assert (options["language"], options["formats"], options["initial_prompt"]) == ("de", ["json", "srt"], "Köln")
    assert folders.files(folders.inbox) == []


def test_a_bad_sidecar_fails_only_its_job_with_the_key_named(folders: Folders) -> None:
    """A typo in the sidecar: that file goes to failed/ with its sidecar and a clear report; the next is done."""
    with DaemonProcess(folders.config, engine="fake"):
        _deliver(folders, "bad.wav", '{"languag": "de"}', suffix=".json")
        wait_until(lambda: (folders.failed / "bad.wav.error.json").exists(), 30, "the report")
        shutil.copy(SHORT, folders.inbox / "good.wav")
        wait_until(lambda: (folders.done / "good.wav").exists(), 30, "good.wav in done/")
    report = json.loads((folders.failed / "bad.wav.error.json").read_text())
    assert report["error_kind"] == "bad_sidecar" and report["stage"] == "options"
    assert "languag: unknown key (did you mean 'language'?)" in report["error"]
    assert {"bad.wav", "bad.wav.json"} <= set(folders.files(folders.failed))


def test_a_requeued_job_takes_its_sidecar_back_to_the_inbox(folders: Folders) -> None:
    """Shutdown past the grace period: the audio and its sidecar are both back in the inbox."""
    folders.write_config(daemon={"shutdown_grace_seconds": 0.5})
    with DaemonProcess(folders.config, engine="fake",
                       env={"TRANSCRIBED_FAKE": json.dumps({"delay": 30})}) as daemon:
        _deliver(folders, "long.wav", "language: en\n")
        daemon.wait_for("job.started")
        assert daemon.stop() == 0
    assert folders.files(folders.inbox) == ["long.wav", "long.wav.yaml"]


class TestStraySidecars:
    """A sidecar whose audio does not come (or came first and was taken without it) does not lie
    in the inbox for ever: after watch.sidecar_wait_seconds it goes to failed/ with a report."""

    def test_a_sidecar_that_came_after_its_audio_goes_to_failed_with_the_reason(self, tmp_path: Path) -> None:
        config = make_config(tmp_path, watch={"sidecar_wait_seconds": 0.3, "rescan_seconds": 0.05})
        consumer = make_consumer(config, FakeEngine())
        drop(config, "talk.wav")
        process_next(consumer)  # transcribed with the defaults: its sidecar was not there yet
        (config.folders.inbox / "talk.wav.yaml").write_text("language: de\n")
        time.sleep(0.4)
        assert consumer.next_job() is None

        assert list(config.folders.inbox.iterdir()) == []
        assert (config.folders.failed / "talk.wav.yaml").read_text() == "language: de\n"
        report = json.loads((config.folders.failed / "talk.wav.yaml.error.json").read_text())
        assert (report["error_kind"], report["stage"]) == ("stray_sidecar", "arrival")
        assert "'talk.wav'" in report["error"] and "before or with its audio" in report["error"]
        assert (config.folders.done / "talk.wav").is_file()

    def test_a_sidecar_waiting_for_its_audio_is_left_alone(self, tmp_path: Path) -> None:
        """Its audio still being copied under a temporary name, or the sidecar still young."""
        config = make_config(tmp_path, watch={"sidecar_wait_seconds": 0.3, "rescan_seconds": 0.05})
        consumer = make_consumer(config, FakeEngine())
        (config.folders.inbox / "big.mp4.yaml").write_text("language: en\n")
        (config.folders.inbox / "big.mp4.part").write_bytes(b"\0" * 1000)
        time.sleep(0.4)
        (config.folders.inbox / "young.wav.json").write_text("{}")
        assert consumer.next_job() is None
        assert sorted(p.name for p in config.folders.inbox.iterdir()) == [
            "big.mp4.part", "big.mp4.yaml", "young.wav.json"]
        assert not config.folders.failed.exists() or list(config.folders.failed.iterdir()) == []
