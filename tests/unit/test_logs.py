"""prints_as_logs from two threads at once: the consumer and the prefetch both call libraries
that print(); each thread's prints become its own events, and stdout is the real one after."""

from __future__ import annotations

import io
import json
import sys
import threading

import pytest
import structlog

from transcribed import logs


def logging_to_a_new_stdout(monkeypatch: pytest.MonkeyPatch) -> io.StringIO:
    """sys.stdout replaced in the test itself (pytest's own capture swaps it between phases)."""
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stdout", stream)
    logs.configure(stream=stream)
    return stream


def test_threads_leaving_in_either_order_put_stdout_back(monkeypatch: pytest.MonkeyPatch) -> None:
    stdout = logging_to_a_new_stdout(monkeypatch)
    first_in, second_in, first_may_leave = threading.Event(), threading.Event(), threading.Event()

    def first() -> None:
        with logs.prints_as_logs("one"):
            first_in.set()
            first_may_leave.wait(5)
            print("from one")

    thread = threading.Thread(target=first)
    thread.start()
    first_in.wait(5)
    with logs.prints_as_logs("two"):
        second_in.set()
        print("from two")
        first_may_leave.set()
        thread.join(5)  # the first thread leaves while this one is still inside
        print("two again")
    print("plain")

    assert sys.stdout is stdout
    lines = stdout.getvalue().splitlines()
    events = [json.loads(line) for line in lines[:-1]]
    assert sorted((e["library"], e["text"]) for e in events) == [
        ("one", "from one"), ("two", "from two"), ("two", "two again")]
    assert lines[-1] == "plain"


def test_a_thread_outside_prints_to_the_real_stdout_meanwhile(monkeypatch: pytest.MonkeyPatch) -> None:
    stdout = logging_to_a_new_stdout(monkeypatch)
    inside, printed = threading.Event(), threading.Event()

    def outside() -> None:
        inside.wait(5)
        print("not a library")
        printed.set()

    thread = threading.Thread(target=outside)
    thread.start()
    with logs.prints_as_logs("lib"):
        inside.set()
        printed.wait(5)
    thread.join(5)
    assert stdout.getvalue() == "not a library\n"


def test_a_logger_that_prints_to_stdout_does_not_print_back_into_the_catcher(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """structlog unconfigured prints each event to sys.stdout, the router inside prints_as_logs;
    the event must reach the real stdout once, not loop back (which hung on structlog's lock)."""
    stdout = io.StringIO()
    monkeypatch.setattr(sys, "stdout", stdout)
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(),
                        processors=[structlog.processors.JSONRenderer()])

    def library_prints() -> None:
        with logs.prints_as_logs("lib"):
            print("Use manually assigned vad_model.")

    try:
        thread = threading.Thread(target=library_prints)
        thread.start()
        thread.join(10)
        assert not thread.is_alive(), "print() inside prints_as_logs hung"
    finally:
        structlog.reset_defaults()
    events = [json.loads(line) for line in stdout.getvalue().splitlines()]
    assert [(e["event"], e["library"], e["text"]) for e in events] == [
        ("library.print", "lib", "Use manually assigned vad_model.")]
