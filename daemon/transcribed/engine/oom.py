"""Telling out-of-memory from a lost GPU, and the batch size that backs off and recovers.

Out-of-memory arrives in several forms: torch.OutOfMemoryError; CTranslate2's RuntimeError
"CUDA failed with error out of memory"; pyannote's MemoryError ("batch_size ... is probably too
large"); cuBLAS/cuDNN allocation failures. A missing driver also says "CUDA failed with error"
but is no OOM, hence the match on "out of memory". A lost GPU (CUDA error 999 "unknown error",
illegal address, device lost) is not an OOM either: no retry helps, only a fresh process.
"""

from __future__ import annotations

from .. import logs

#: Texts of CUDA failures after which the process's CUDA context is unusable. cudaGetErrorString
#: texts as CTranslate2 ("CUDA failed with error X") and torch ("CUDA error: X") report them.
#: A driver that became "insufficient" mid-run was replaced under the process (a driver update).
_GPU_LOST_TEXTS = (
    "unknown error", "cudaerrorunknown", "error 999", "device lost", "devices unavailable",
    "busy or unavailable", "illegal memory access", "unspecified launch failure",
    "uncorrectable ecc error", "gpu is lost", "gpu has fallen off the bus",
    "no cuda-capable device is detected", "driver version is insufficient",
    "driver shutting down", "initialization error", "launch timed out",
)
_ALLOC_FAILED_TEXTS = ("_ALLOC_FAILED", "CUDNN_STATUS_NOT_ENOUGH_MEMORY", "CUDNN_STATUS_ALLOC_FAILED")

log = logs.get_logger()


def is_out_of_memory(exc: BaseException) -> bool:
    """Is `exc` (in any of its forms) an out-of-memory error that a smaller batch may avoid?"""
    if isinstance(exc, MemoryError):  # pyannote's re-raise, and std::bad_alloc via pybind11
        return True
    if type(exc).__name__ == "OutOfMemoryError":  # torch.OutOfMemoryError, without importing torch
        return True
    if isinstance(exc, RuntimeError):
        text = str(exc)
        return "out of memory" in text.lower() or any(t in text for t in _ALLOC_FAILED_TEXTS)
    return False


def is_gpu_lost(exc: BaseException) -> bool:
    """Has the GPU gone away under the process (so only a restart can bring it back)?"""
    if not isinstance(exc, RuntimeError) or is_out_of_memory(exc):
        return False
    text = str(exc).lower()
    mentions_gpu = "cuda" in text or "cublas" in text or "cudnn" in text or "gpu" in text
    return mentions_gpu and any(t in text for t in _GPU_LOST_TEXTS)


def next_batch_size(batch_size: int) -> int | None:
    """Half the batch size after an out-of-memory error; None when it is already 1."""
    return batch_size // 2 if batch_size > 1 else None


class BatchGovernor:
    """The batch size the next attempt uses: halved on OOM, probed back up after a run of successes.

    One long file that needed batch 2 should not slow the rest of the day: after
    `probe_after` jobs without an OOM at a lowered size, the size doubles (up to the ceiling).
    """

    def __init__(self, ceiling: int, probe_after: int) -> None:
        self.ceiling = ceiling
        self.current = ceiling
        self.probe_after = probe_after
        self._streak = 0

    def lower(self) -> int | None:
        """Halve the batch size; None (and no change) when it is already 1."""
        smaller = next_batch_size(self.current)
        if smaller is not None:
            self.current = smaller
        self._streak = 0
        return smaller

    def succeeded(self) -> None:
        """Count a job that needed no back-off; probe upward after enough of them."""
        if self.current >= self.ceiling:
            return
        self._streak += 1
        if self._streak >= self.probe_after:
            old, self.current, self._streak = self.current, min(self.ceiling, self.current * 2), 0
            log.info("engine.batch_probe_up", old_batch_size=old, new_batch_size=self.current)
