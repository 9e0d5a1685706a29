"""The status page at / on the metrics listener, read by a real headless Chromium (Debian's
`chromium`, over the DevTools protocol): it renders, the running job's progress moves while the
page reloads itself, a failed job's reason shows, and a screenshot of each state is kept with the
test's output (its path printed). Then what it must never do: open to another address, show a
path outside the configured folders."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.support.chromium import CHROMIUM, Browser
from tests.support.daemon import DaemonProcess, Folders
from tests.support.media import write_text_as, write_tone_wav
from tests.support.net import free_port

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists() and not os.environ.get("CI"),
                                reason="Debian's chromium is not installed (.ci/run installs it)")


def _daemon(folders: Folders, fake: dict[str, object] | None = None) -> DaemonProcess:
    return DaemonProcess(folders.config, engine="fake",
                         env={"TRANSCRIBED_FAKE": json.dumps(fake or {}), "no_proxy": "127.0.0.1"})


def _drop(folders: Folders, name: str, seconds: float | None) -> None:
    """A tone of `seconds` (None: a text file under a media name), moved in whole."""
    staging = folders.root / "staging" / name
    staging.parent.mkdir(parents=True, exist_ok=True)
    if seconds is None:
        write_text_as(staging)
    else:
        write_tone_wav(staging, seconds)
    os.rename(staging, folders.inbox / name)


def _listening(daemon: DaemonProcess) -> str:
    return str(daemon.wait_for("metrics.listening")["address"])


def _shot(browser: Browser, tmp_path: Path, name: str) -> Path:
    path = browser.screenshot(tmp_path / "screenshots" / f"status-page-{name}.png")
    print(f"screenshot of the status page ({name}): {path}")  # noqa: T201 - kept with the test's output
    return path


def test_the_page_shows_a_failed_jobs_reason_and_a_running_jobs_progress_moving(
        folders: Folders, tmp_path: Path) -> None:
    """Idle, then a file that is not audio fails (its reason on the page), then a long file runs:
    its progress bar moves from one reload of the page to the next, with an ETA; the next long one
    runs while a short one waits with its length; each then shows as done with where its files
    went. One file at a time (no packing, batching or decoding ahead), so what waits is known."""
    folders.write_config(metrics={"listen": f"127.0.0.1:{free_port()}"}, packing={"enabled": False},
                         batching={"enabled": False}, overlap={"enabled": False})
    fake = {"delays": {"first.wav": 20.0, "second.wav": 10.0}}  # several reloads (5 s) each
    with _daemon(folders, fake) as daemon, Browser(tmp_path / "chromium-profile") as browser:
        url = f"http://{_listening(daemon)}/"
        browser.open(url)
        assert browser.evaluate("document.getElementById('health').textContent") == "working"
        assert "Nothing is being transcribed." in browser.text()
        assert browser.evaluate("document.querySelector('meta[http-equiv=refresh]').content") == "5"
        _shot(browser, tmp_path, "idle")

        _drop(folders, "notes.mp3", None)
        reason = browser.wait_for("document.querySelector('[data-outcome=failed] .reason')?.textContent",
                                  timeout=30)
        assert reason.startswith("not_audio: ")
        assert "kept in failed/notes.mp3, its report beside it" in browser.text()
        _shot(browser, tmp_path, "failed")

        _drop(folders, "first.wav", 30.0)
        first = float(browser.wait_for(PERCENT.format(above=0), timeout=30))
        _drop(folders, "second.wav", 40.0)  # both wait while the first runs
        _drop(folders, "third.wav", 2.0)
        later = float(browser.wait_for(PERCENT.format(above=first), timeout=30))
        assert 0 < first < later <= 100
        text = browser.text()
        assert "first.wav" in text and "30 s of audio" in text and "left" in text
        _shot(browser, tmp_path, "running")

        browser.wait_for("document.getElementById('running').textContent.includes('second.wav') && "
                         "document.getElementById('waiting').textContent.includes('inbox/third.wav')",
                         timeout=60)
        waiting = browser.evaluate("document.getElementById('waiting').innerText")
        assert "Waiting: 1" in waiting and "inbox/third.wav" in waiting and "2 s" in waiting
        _shot(browser, tmp_path, "waiting")

        browser.wait_for("document.querySelectorAll('[data-outcome=done]').length >= 3", timeout=60)
        results = browser.evaluate("[...document.querySelectorAll('[data-outcome=done] code')]"
                                   ".map(e => e.textContent)")
        assert "done/first.wav" in results and "outbox/first.srt" in results
        _shot(browser, tmp_path, "done")
        page = urllib.request.urlopen(url, timeout=10).read().decode()  # noqa: S310 - loopback
        assert daemon.stop() == 0
    assert str(folders.root) not in page, "no absolute path is shown"
    assert "fake transcript" not in page, "no file content is shown"


#: The progress bar's percent once it is above `above` (the page is read as it reloads).
PERCENT = ("+document.getElementById('progress')?.dataset.percent > {above} && "
           "document.getElementById('progress').dataset.percent")


def test_the_page_is_only_for_the_allowed_clients_and_can_be_off(folders: Folders) -> None:
    """Loopback is not among the allowed networks: 403, while /metrics still answers; with
    status_page_clients [] there is no page at all (404)."""
    folders.write_config(metrics={"listen": f"127.0.0.1:{free_port()}", "status_page_clients": ["192.0.2.0/24"]})
    with _daemon(folders) as daemon:
        address = _listening(daemon)
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"http://{address}/", timeout=10)  # noqa: S310 - loopback
        assert refused.value.code == 403
        assert urllib.request.urlopen(f"http://{address}/metrics", timeout=10).status == 200  # noqa: S310
        assert daemon.stop() == 0
    folders.write_config(metrics={"listen": f"127.0.0.1:{free_port()}", "status_page_clients": []})
    with _daemon(folders) as daemon:
        address = _listening(daemon)
        assert daemon.wait_for("metrics.listening")["paths"] == ["/metrics", "/healthz"]
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(f"http://{address}/", timeout=10)  # noqa: S310 - loopback
        assert missing.value.code == 404
        assert daemon.stop() == 0
