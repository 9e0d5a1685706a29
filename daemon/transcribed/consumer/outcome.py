"""What happens to a job, decided from what happened to it: one pure function, `decide`.

The consumer (loop.py) applies the answer in one place (endings.py); nothing here touches a folder, a
thread or a clock, so every rule is a row of a table test (tests/unit/test_outcome.py):

| what happened                          | outcome                                         |
|----------------------------------------|-------------------------------------------------|
| about to start, attempts < max          | run                                             |
| about to start, attempts >= max         | failed/ as `poison` (each attempt killed us)    |
| StorageFault (our own write refused:    | wait for storage: the attempt not counted, the  |
|   full, over quota, read-only)          |   work kept, run on once writes go through      |
| BadInput                                | failed/, its kind (empty, not_audio, ...)       |
| OutOfMemory (oom.fallback: fail)        | failed/ as `out_of_memory`                      |
| StageFailed (align, diarize)            | failed/ as `stage_failed`, plain transcript kept|
| GpuLost                                 | every file in flight back to the inbox, exit 3  |
| anything, the job's folder unreachable  | wait: retried later, the attempt not counted    |
| anything else, attempts < max           | retried after retry_delay * 2^(attempts-1)      |
| anything else, attempts >= max          | failed/ as `poison`, with the last error        |
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from ..config import Jobs
from ..errors import BadInput, GpuLost, OutOfMemory, StageFailed, StorageFault


class Action(str, Enum):
    """The ways a job can go on from here."""

    RUN = "run"
    FAIL = "fail"
    RETRY = "retry"
    #: The job's own folder cannot be reached (a share away): retried, the attempt not counted.
    WAIT = "wait"
    #: A write of the daemon's own was refused by a full, over-quota or read-only filesystem:
    #: the job waits for storage (spool/storage.py), the attempt not counted, its work kept.
    WAIT_FOR_STORAGE = "wait_for_storage"
    REQUEUE_AND_EXIT = "requeue_and_exit"


@dataclass(frozen=True)
class Outcome:
    """A decision: the action, and what the report, the log and the retry need."""

    action: Action
    #: The report's stable `error_kind` (FAIL), or None.
    kind: str | None = None
    message: str = ""
    #: Seconds until the retry (RETRY).
    retry_in: float | None = None
    #: Outputs already written that go to the outbox with the failure (StageFailed).
    kept: dict[str, Path] | None = None


def decide(error: BaseException | None, attempts: int, jobs: Jobs,  # noqa: PLR0911 - a return per row of the table
           reachable: bool = True) -> Outcome:
    """The outcome of a job that has been started `attempts` times, given `error` (None: the job
    is about to start) and whether the job's own folder could still be reached."""
    if error is None:
        if attempts >= jobs.max_attempts:
            return Outcome(Action.FAIL, "poison", f"the file was tried {attempts} times and each "
                           "attempt killed or failed the daemon; it is not tried again")
        return Outcome(Action.RUN)
    if isinstance(error, StorageFault):
        return Outcome(Action.WAIT_FOR_STORAGE, error.condition, f"{error}; the file is not to blame")
    if not reachable and not isinstance(error, GpuLost):
        return Outcome(Action.WAIT, message=f"the job's folder cannot be reached "
                       f"({type(error).__name__}: {error}); the file is not to blame",
                       retry_in=jobs.retry_delay_seconds)
    if isinstance(error, BadInput):
        return Outcome(Action.FAIL, error.kind, str(error))
    if isinstance(error, OutOfMemory):
        return Outcome(Action.FAIL, "out_of_memory", str(error))
    if isinstance(error, StageFailed):
        return Outcome(Action.FAIL, "stage_failed", str(error), kept=error.kept)
    if isinstance(error, GpuLost):
        return Outcome(Action.REQUEUE_AND_EXIT, message=str(error))
    described = f"{type(error).__name__}: {error}"
    if attempts >= jobs.max_attempts:
        return Outcome(Action.FAIL, "poison", f"failed {attempts} times; last error: {described}")
    return Outcome(Action.RETRY, message=described,
                   retry_in=jobs.retry_delay_seconds * 2 ** max(0, attempts - 1))
