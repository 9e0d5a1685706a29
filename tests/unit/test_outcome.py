"""outcome.decide: every rule of what happens to a job, as a table (no threads, no folders)."""

from __future__ import annotations

from pathlib import Path

import pytest

from transcribed.config import Jobs
from transcribed.consumer.outcome import Action, decide
from transcribed.errors import BadInput, GpuLost, OutOfMemory, ReadFault, StageFailed, StorageFault, unreadable

JOBS = Jobs(max_attempts=3, retry_delay_seconds=2.0)
KEPT = {".json": Path("out/x.json")}


def _refused(code: int) -> StorageFault:
    """A write of the daemon's own refused (durable.own_write makes these)."""
    return StorageFault(OSError(code, "refused", "/srv/share/state/x"), Path("/srv/share/state"))


TABLE = [
    # (what happened, attempts so far, action, error kind, retry delay)
    (None, 0, Action.RUN, None, None),
    (None, 2, Action.RUN, None, None),
    (None, 3, Action.FAIL, "poison", None),
    (BadInput("empty", "the file is empty"), 1, Action.FAIL, "empty", None),
    (BadInput("not_audio", "no audio"), 3, Action.FAIL, "not_audio", None),
    (OutOfMemory("even at batch size 1"), 1, Action.FAIL, "out_of_memory", None),
    (StageFailed("align", "boom", KEPT), 1, Action.FAIL, "stage_failed", None),
    (GpuLost("CUDA error 999"), 1, Action.REQUEUE_AND_EXIT, None, None),
    (GpuLost("CUDA error 999"), 3, Action.REQUEUE_AND_EXIT, None, None),
    (RuntimeError("a bug"), 1, Action.RETRY, None, 2.0),
    (OSError(28, "No space left on device"), 2, Action.RETRY, None, 4.0),  # not a write of ours
    (RuntimeError("a bug"), 3, Action.FAIL, "poison", None),
    (ReadFault(OSError(5, "Input/output error")), 1, Action.RETRY, None, 2.0),  # the storage, not the file
    (ReadFault(OSError(107, "Transport endpoint is not connected")), 3, Action.FAIL, "poison", None),
    (_refused(28), 1, Action.WAIT_FOR_STORAGE, "full", None),
    (_refused(122), 3, Action.WAIT_FOR_STORAGE, "quota_exceeded", None),  # EDQUOT
    (_refused(30), 9, Action.WAIT_FOR_STORAGE, "read_only", None),
]


@pytest.mark.parametrize(("error", "attempts", "action", "kind", "retry_in"), TABLE)
def test_decide(error: BaseException | None, attempts: int, action: Action, kind: str | None,
                retry_in: float | None) -> None:
    outcome = decide(error, attempts, JOBS)
    assert (outcome.action, outcome.kind, outcome.retry_in) == (action, kind, retry_in)


def test_a_poison_file_after_failures_names_the_last_error() -> None:
    outcome = decide(ValueError("bad frame"), 3, JOBS)
    assert outcome.message == "failed 3 times; last error: ValueError: bad frame"


def test_a_bad_input_report_carries_its_own_message() -> None:
    assert decide(BadInput("truncated", "ends after 3 s"), 1, JOBS).message == "ends after 3 s"


def test_a_failed_later_stage_keeps_the_plain_transcript() -> None:
    assert decide(StageFailed("diarize", "no pipeline", KEPT), 1, JOBS).kept == KEPT


def test_a_retry_says_what_went_wrong() -> None:
    assert decide(RuntimeError("a bug"), 1, JOBS).message == "RuntimeError: a bug"


@pytest.mark.parametrize("error", [BadInput("unreadable", "no such file"), OSError(5, "I/O error"),
                                   RuntimeError("a bug")])
def test_a_job_whose_folder_is_away_waits_whatever_it_raised(error: BaseException) -> None:
    """A share that went away makes every step fail; the file is not to blame, even at the last attempt."""
    outcome = decide(error, 3, JOBS, reachable=False)
    assert (outcome.action, outcome.kind, outcome.retry_in) == (Action.WAIT, None, 2.0)


def test_a_lost_gpu_is_a_lost_gpu_even_with_the_folder_away() -> None:
    assert decide(GpuLost("CUDA error 999"), 1, JOBS, reachable=False).action is Action.REQUEUE_AND_EXIT


def test_a_full_disk_is_never_the_files_fault_whatever_the_count_and_wherever_the_job_is() -> None:
    """A write of ours refused by storage waits for storage: never a retry that counts, never
    poison, even past the last attempt or with the job's folder away."""
    for attempts in range(5):
        for reachable in (True, False):
            outcome = decide(_refused(28), attempts, JOBS, reachable=reachable)
            assert outcome.action is Action.WAIT_FOR_STORAGE
            assert outcome.message.endswith("the file is not to blame")


@pytest.mark.parametrize(("errno_", "kind"), [(5, ReadFault), (107, ReadFault), (116, ReadFault), (110, ReadFault),
                                              (13, BadInput), (36, BadInput)])
def test_a_read_is_the_files_fault_only_when_the_storage_did_not_fail(errno_: int, kind: type) -> None:
    """EIO, ENOTCONN, ESTALE, ETIMEDOUT: the storage under the file (a share's server away);
    EACCES, ENAMETOOLONG: the file as it is."""
    error = unreadable(OSError(errno_, "strerror"))
    assert isinstance(error, kind)
    assert "cannot read the file: strerror" in str(error)
