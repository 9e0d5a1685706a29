"""Per-file options delivered beside the audio (`<name>.yaml`), with the daemon and the fake engine."""

from __future__ import annotations

import json
import shutil

import pytest

from tests.support.corpus import corpus_dir
from tests.support.daemon import DaemonProcess, Folders, wait_until

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
