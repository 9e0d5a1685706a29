"""Notifications through Apprise from a real daemon (fake engine) to real receivers on 127.0.0.1:
an HTTP server taking Apprise's JSON and form notifications, and an SMTP server (aiosmtpd) with a
login taking its e-mails; receivers that are down for a while get the notification later, once;
and no URL's secret ever reaches the log."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.daemon import DaemonProcess, Folders, wait_until
from tests.support.media import write_text_as, write_tone_wav
from tests.support.receivers import HttpReceiver, SmtpReceiver

JSON_TOKEN = "tok-3f9a1c77e2"  # noqa: S105 - a test's stand-in for a service's secret
FORM_TOKEN = "tok-b81d04aa5c"  # noqa: S105


def _daemon(folders: Folders) -> DaemonProcess:
    env = {"TRANSCRIBED_FAKE": "{}", "no_proxy": "127.0.0.1", "NO_PROXY": "127.0.0.1"}
    return DaemonProcess(folders.config, engine="fake", env=env)


def _notify_config(folders: Folders, urls: list[str], **hooks: object) -> None:
    """The URL file (a comment and a blank line in it too) and hooks.notify naming it."""
    (folders.root / "notify.urls").write_text("# where transcribed tells people\n\n" + "\n".join(urls) + "\n")
    folders.write_config(hooks={"retry_delay_seconds": 0.2, "notify": {"urls_file": "notify.urls"},
                                **hooks})


def _deliver(folders: Folders, relpath: str, audio: bool = True) -> None:
    """A second of tone, or (not audio) a text file, renamed into the inbox."""
    folders.deliver(relpath, (lambda path: write_tone_wav(path, 1.0)) if audio else write_text_as)


def _no_secret_in(daemon: DaemonProcess, secrets: list[str]) -> None:
    said = "".join(daemon.lines) + daemon.stderr()
    for secret in secrets:
        assert secret not in said, f"{secret!r} is in the daemon's output"


def test_a_done_and_a_failed_job_are_told_by_json_form_and_email(folders: Folders) -> None:
    """One done and one failed job: each of the three services gets one notification per job,
    with the file, the outcome, the audio's length, the first words or the error, and where the
    files are; the tokens and the mail password are in no log line."""
    with HttpReceiver() as http, SmtpReceiver() as smtp:
        smtp.start()
        _notify_config(folders, [f"json://127.0.0.1:{http.port}/notify/{JSON_TOKEN}",
                                 f"form://127.0.0.1:{http.port}/form/{FORM_TOKEN}", smtp.url()])
        with _daemon(folders) as daemon:
            started = daemon.wait_for("hooks.started")
            _deliver(folders, "talks/a.wav")
            _deliver(folders, "notes.mp3", audio=False)
            wait_until(lambda: daemon.count("hook.delivered") >= 6, 60, "six notifications delivered")
            assert daemon.stop() == 0
        _no_secret_in(daemon, [JSON_TOKEN, FORM_TOKEN, smtp.password])
    assert started["notify"] == ["JSON, line 3", "Form, line 4", "E-Mail, line 5"]
    delivered = [e for e in daemon.events() if e["event"] == "hook.delivered"]
    assert {(e["target"], e["service"], e["file"]) for e in delivered} == {
        ("notify", service, file) for service in started["notify"] for file in ("talks/a.wav", "notes.mp3")}
    assert daemon.count("hook.failed") == 0

    (done_json, failed_json) = sorted(http.accepted(f"/notify/{JSON_TOKEN}"),
                                      key=lambda p: "Failed" in p.fields["title"])
    assert done_json.fields["title"] == "Transcribed: a.wav"
    assert done_json.fields["type"] == "success"
    lines = done_json.fields["message"].splitlines()
    assert lines[0].startswith("1 s of audio (en), transcribed in ")
    assert lines[1] == "“fake transcript of a.wav, 1.0 s”"
    assert lines[2].startswith("Results: outbox/talks/a.") and lines[2].endswith("more.")
    assert failed_json.fields["title"] == "Failed: notes.mp3"
    assert failed_json.fields["type"] == "failure"
    failed_lines = failed_json.fields["message"].splitlines()
    assert failed_lines[0].startswith("Not transcribed (not_audio): ")
    assert failed_lines[-1] == "Kept in failed/notes.mp3 with its report."

    forms = http.accepted(f"/form/{FORM_TOKEN}")
    assert sorted(p.fields["title"] for p in forms) == ["Failed: notes.mp3", "Transcribed: a.wav"]
    assert all(p.content_type.startswith("application/x-www-form-urlencoded") for p in forms)

    mails = {m["Subject"]: m for m in smtp.messages}
    assert sorted(mails) == ["Failed: notes.mp3", "Transcribed: a.wav"]
    assert smtp.mailbox.envelopes[0] == ("transcribed@example.com", ["office@example.com"])
    text = mails["Transcribed: a.wav"].get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "“fake transcript of a.wav, 1.0 s”" in text


def test_receivers_that_are_down_for_a_while_get_it_later_once(folders: Folders) -> None:
    """The mail server is down (nothing listens on its port) and the web receiver answers 503 twice:
    each try fails with a reason that names the service, never its secrets; once they are up,
    each gets the notification exactly once, and nothing is tried again after."""
    with HttpReceiver(down_for=2) as http, SmtpReceiver() as smtp:
        assert smtp.refuses()
        _notify_config(folders, [smtp.url(), f"json://127.0.0.1:{http.port}/notify/{JSON_TOKEN}"],
                       max_attempts=12)
        with _daemon(folders) as daemon:
            _deliver(folders, "a.wav")
            failed = daemon.wait_for("hook.failed", timeout=60, service="E-Mail, line 3")
            smtp.start()  # the mail server comes back
            mail = daemon.wait_for("hook.delivered", timeout=60, service="E-Mail, line 3")
            web = daemon.wait_for("hook.delivered", timeout=60, service="JSON, line 4")
            wait_until(lambda: not list((folders.state / "hooks").glob("*.*.*/*.json")), 30,
                       "no delivery pending")
            assert daemon.stop() == 0
        _no_secret_in(daemon, [JSON_TOKEN, smtp.password])
    assert failed["target"] == "notify" and failed["error"].startswith("E-Mail, line 3: ")
    assert mail["attempt"] >= 2
    assert [m["Subject"] for m in smtp.messages] == ["Transcribed: a.wav"]
    assert [p.status for p in http.tries(f"/notify/{JSON_TOKEN}")] == [503, 503, 200]
    assert web["attempt"] == 3
    (ledger,) = (folders.state / "hooks" / "delivered").glob("*.json")
    states = json.loads(ledger.read_text())["targets"]
    assert sorted(state["ended"] for state in states.values()) == ["delivered", "delivered"]
    assert all(key.startswith("notify:") and JSON_TOKEN not in key for key in states)


def test_a_url_file_with_a_line_apprise_cannot_use_stops_the_start_naming_the_line(folders: Folders) -> None:
    """Exit code 2 and the line's number and scheme in the message; the rest of the line (a token)
    is never printed."""
    _notify_config(folders, ["json://127.0.0.1:9/ok", f"notaservice://{JSON_TOKEN}@host/x"])
    daemon = _daemon(folders).start(wait=False)
    assert daemon.process is not None
    assert daemon.process.wait(timeout=60) == 2
    assert "hooks.notify.urls_file: line 4 of" in daemon.stderr()
    assert "'notaservice'" in daemon.stderr()
    _no_secret_in(daemon, [JSON_TOKEN])
    assert Path(folders.inbox).is_dir()
