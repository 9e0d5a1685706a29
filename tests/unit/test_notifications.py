"""Notifications (Apprise) without a daemon: the config keys and their checks, the URL file read
at start (errors name the line, never the URL), what a message says for a done and a failed job,
the first words read from each result format, and a failed try's reason with no secret in it
(against a real HTTP server on 127.0.0.1, in this process)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from transcribed.config import Hooks, Notify, load_config, parse_config
from transcribed.errors import ConfigError
from transcribed.hooks.message import first_words, quote, render
from transcribed.hooks.notifications import Notifications

TOKEN = "tok-9d8c7b6a5f"  # noqa: S105 - a stand-in for a service's secret

DONE = {"job_id": "j1", "outcome": "done", "file": "talks/keynote.mp4", "error": None,
        "language": "en", "audio_seconds": 3712.4, "wall_seconds": 402.7,
        "first_words": "Good morning everyone and welcome to the keynote of this year",
        "source": {"relative": "talks/keynote.mp4", "path": "/srv/done/talks/keynote.mp4"},
        "results": [{"format": f, "relative": f"talks/keynote.{f}", "path": f"/srv/outbox/talks/keynote.{f}"}
                    for f in ("json", "txt", "srt")]}
FAILED = {"job_id": "j2", "outcome": "failed", "file": "notes.mp3", "language": None,
          "audio_seconds": None, "wall_seconds": None, "first_words": None, "results": [],
          "error": {"kind": "not_audio", "message": "no audio stream", "stage": "decode"},
          "source": {"relative": "notes.mp3", "path": "/srv/failed/notes.mp3"}}


def _error(data: dict) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_config(data)
    return str(caught.value)


class TestConfig:
    """hooks.notify: off by default; templates name only known fields; the file counts from the
    config's folder."""

    def test_off_by_default(self) -> None:
        notify = parse_config({}).hooks.notify
        assert notify == Notify() and notify.urls_file is None
        assert Notifications(Hooks()).targets == []

    @pytest.mark.parametrize(("notify", "message"), [
        ({"title": "{file.__class__}"}, "hooks.notify.title: unknown field {file.__class__}"),
        ({"body": "{summary}\n{secret}"}, "hooks.notify.body: unknown field {secret}"),
        ({"title": "{file"}, "hooks.notify.title: not a valid template"),
        ({"first_words": 0}, "hooks.notify.first_words: expected a positive integer"),
        ({"urls": "x"}, "hooks.notify.urls: unknown key"),
    ])
    def test_values_that_cannot_work_are_refused_naming_the_key(self, notify: dict, message: str) -> None:
        assert message in _error({"hooks": {"notify": notify}})

    def test_the_url_file_counts_from_the_config_folder(self, tmp_path: Path) -> None:
        (tmp_path / "c.yaml").write_text("hooks: {notify: {urls_file: secrets/notify.urls}}\n")
        assert load_config(tmp_path / "c.yaml").hooks.notify.urls_file == tmp_path / "secrets" / "notify.urls"


class TestUrlFile:
    """Read once at start: every line a URL Apprise can use; an error never shows the URL."""

    def _load(self, tmp_path: Path, text: str) -> Notifications:
        (tmp_path / "n.urls").write_text(text)
        return Notifications(Hooks(notify=Notify(urls_file=tmp_path / "n.urls")))

    def test_each_url_is_a_target_named_by_its_kind_and_line(self, tmp_path: Path) -> None:
        notifications = self._load(tmp_path, f"# ours\n\njson://127.0.0.1:9/{TOKEN}\n"
                                   f"ntfy://ntfy.example/{TOKEN}\njson://127.0.0.1:9/{TOKEN}\n")
        assert [notifications.label(t) for t in notifications.targets] == ["JSON, line 3", "ntfy, line 4"]
        assert all(t.startswith("notify:") and TOKEN not in t for t in notifications.targets)

    @pytest.mark.parametrize(("text", "message"), [
        (f"json://127.0.0.1:9/a\nbogus://{TOKEN}@host\n", "line 2 of"),
        (f"just words {TOKEN}\n", "line 1 of"),
        ("# nothing but a comment\n", "holds no URL"),
    ])
    def test_a_line_apprise_cannot_use_is_refused_by_its_number(self, tmp_path: Path, text: str,
                                                                message: str) -> None:
        with pytest.raises(ConfigError) as caught:
            self._load(tmp_path, text)
        assert message in str(caught.value) and str(caught.value).startswith("hooks.notify.urls_file: ")
        assert TOKEN not in str(caught.value)

    def test_a_file_that_cannot_be_read_is_a_config_error(self, tmp_path: Path) -> None:
        with pytest.raises(ConfigError, match="hooks.notify.urls_file: cannot read"):
            Notifications(Hooks(notify=Notify(urls_file=tmp_path / "missing.urls")))


class TestMessage:
    """What a person reads: the default templates for a done and a failed job, and one's own."""

    def test_a_done_job(self) -> None:
        title, body = render(Notify(first_words=5), DONE)
        assert title == "Transcribed: keynote.mp4"
        assert body.splitlines() == [
            "1 h 01 min of audio (en), transcribed in 6 min 43 s.",
            "“Good morning everyone and welcome…”",
            "Results: outbox/talks/keynote.json, outbox/talks/keynote.txt and 1 more."]

    def test_a_failed_job_says_why_and_where_the_file_is(self) -> None:
        title, body = render(Notify(), FAILED)
        assert title == "Failed: notes.mp3"
        assert body.splitlines() == ["Not transcribed (not_audio): no audio stream",
                                     "Kept in failed/notes.mp3 with its report."]

    def test_ones_own_template_and_lines_with_nothing_to_say_are_dropped(self) -> None:
        notify = Notify(title="[{outcome}] {file}", body="{error}\n{language}: {duration}\n{job_id}")
        assert render(notify, DONE) == ("[done] talks/keynote.mp4", "en: 1 h 01 min\nj1")
        assert render(notify, FAILED) == ("[failed] notes.mp3", "no audio stream\nj2")

    def test_quote_marks_a_cut(self) -> None:
        assert quote("one two three", 3) == "“one two three”"
        assert quote("one two three", 2) == "“one two…”"
        assert quote("   ", 2) == ""


class TestFirstWords:
    """From the start of a staged result: the text file first, else the JSON's segments, else a
    subtitle file's cue text; nothing from a file that holds no text."""

    def test_each_format(self, tmp_path: Path) -> None:
        (tmp_path / "a.txt").write_text("Hello there.\nGeneral remarks follow.\n")
        (tmp_path / "a.json").write_text(json.dumps({"segments": [{"text": " From JSON"}, {"text": " two"}]}))
        (tmp_path / "a.srt").write_text("1\n00:00:00,000 --> 00:00:01,500\nFrom SRT\n\n2\n00:00:02,000 --> "
                                        "00:00:03,000\nsecond cue\n")
        (tmp_path / "a.vtt").write_text("WEBVTT\n\n00:00.000 --> 00:01.500\nFrom VTT\n")
        (tmp_path / "a.tsv").write_text("start\tend\ttext\n0\t1500\tFrom TSV\n")
        assert first_words({".txt": tmp_path / "a.txt", ".json": tmp_path / "a.json"}) == \
            "Hello there. General remarks follow."
        assert first_words({".json": tmp_path / "a.json"}) == "From JSON two"
        assert first_words({".srt": tmp_path / "a.srt"}) == "From SRT second cue"
        assert first_words({".vtt": tmp_path / "a.vtt"}) == "From VTT"
        assert first_words({".tsv": tmp_path / "a.tsv"}) == "From TSV"
        assert first_words({".txt": tmp_path / "a.txt"}, words=2) == "Hello there."

    def test_silence_a_missing_or_damaged_file_give_nothing(self, tmp_path: Path) -> None:
        (tmp_path / "empty.txt").write_text("")
        (tmp_path / "bad.json").write_text("{not json")
        assert first_words({".txt": tmp_path / "empty.txt", ".json": tmp_path / "bad.json",
                            ".srt": tmp_path / "gone.srt", ".log.jsonl": tmp_path / "x"}) == ""


@pytest.fixture
def refusing_server() -> Iterator[int]:
    """An HTTP server on 127.0.0.1 that answers every POST with 500."""
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(500)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_a_refused_try_says_which_service_and_why_without_its_secret(tmp_path: Path,
                                                                     refusing_server: int) -> None:
    (tmp_path / "n.urls").write_text(f"json://user:{TOKEN}@127.0.0.1:{refusing_server}/hook/{TOKEN}\n")
    notifications = Notifications(Hooks(notify=Notify(urls_file=tmp_path / "n.urls")))
    (target,) = notifications.targets
    error = notifications.send(target, DONE)
    assert error is not None and error.startswith("JSON, line 1: ")
    assert "500" in error
    assert TOKEN not in error


@pytest.mark.parametrize("page", ["notifications.md", "configuration.md"])
def test_every_yaml_example_of_the_notifications_and_retention_docs_passes_the_loader(page: str) -> None:
    """The documentation's configs are real configs (and the retention ones say something)."""
    import re

    import yaml

    text = (Path(__file__).resolve().parents[2] / "docs" / page).read_text()
    blocks = [b for b in re.findall(r"```yaml\n(.*?)```", text, re.S) if "notify" in b or "retention" in b
              or "status_page_clients" in b]
    assert len(blocks) >= (3 if page == "notifications.md" else 1)
    for block in blocks:
        config = parse_config(yaml.safe_load(block))
        assert config.hooks.notify.urls_file or config.retention.active or config.metrics.status_page_clients
