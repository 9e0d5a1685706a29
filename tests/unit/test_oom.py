"""Out-of-memory and lost-GPU classification on real exception objects, and the batch governor."""

from __future__ import annotations

import functools

import ctranslate2
import numpy as np
import pytest
import torch
from structlog.testing import capture_logs

from transcribed.engine.oom import BatchGovernor, is_gpu_lost, is_out_of_memory, next_batch_size

#: pyannote's Inference.infer re-raises a CUDA OOM with this text (pyannote/audio/core/inference.py).
PYANNOTE_OOM = ("batch_size ( 32) is probably too large. Try with a smaller value until memory "
                "error disappears.")


def ctranslate2_cuda_error() -> RuntimeError:
    """The real error CTranslate2 raises here, asked about CUDA without a driver."""
    error = _first_ctranslate2_cuda_error()
    if error is None:
        pytest.skip("this machine has a working CUDA driver")
    return error


@functools.lru_cache(maxsize=1)
def _first_ctranslate2_cuda_error() -> RuntimeError | None:
    # CTranslate2 raises only on the first call in a process; later calls answer {'float32'}.
    try:
        ctranslate2.get_supported_compute_types("cuda")
    except RuntimeError as exc:
        return exc
    return None


def numpy_memory_error() -> MemoryError:
    """A real host allocation failure (numpy's _ArrayMemoryError, a MemoryError)."""
    try:
        np.empty(2**62, dtype=np.uint8)
    except MemoryError as exc:
        return exc
    pytest.skip("numpy allocated 4 EiB?")


OUT_OF_MEMORY = {
    "torch.OutOfMemoryError": lambda: torch.OutOfMemoryError(
        "CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of 7.79 GiB "
        "of which 1.02 GiB is free."),
    "torch.cuda.OutOfMemoryError": lambda: torch.cuda.OutOfMemoryError("CUDA out of memory."),
    "ctranslate2": lambda: RuntimeError("CUDA failed with error out of memory"),
    "pyannote MemoryError": lambda: MemoryError(PYANNOTE_OOM),
    "cuBLAS via CTranslate2": lambda: RuntimeError("cuBLAS failed with status CUBLAS_STATUS_ALLOC_FAILED"),
    "cuBLAS via torch": lambda: RuntimeError(
        "CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`"),
    "cuDNN": lambda: RuntimeError("cuDNN error: CUDNN_STATUS_ALLOC_FAILED"),
    "torch.AcceleratorError": lambda: torch.AcceleratorError("CUDA error: out of memory"),
    "std::bad_alloc via pybind11": lambda: MemoryError("std::bad_alloc"),
    "numpy host allocation": numpy_memory_error,
}

NOT_OUT_OF_MEMORY = {
    "driver insufficient (real)": ctranslate2_cuda_error,
    "driver insufficient (text)": lambda: RuntimeError(
        "CUDA failed with error CUDA driver version is insufficient for CUDA runtime version"),
    "model unloaded": lambda: RuntimeError("No model replica is available in this thread"),
    "English-only model": lambda: RuntimeError("detect_language can only be called on multilingual models"),
    "ValueError": lambda: ValueError("'waveform' must be provided as a (channel, time) torch Tensor."),
    "OSError": lambda: OSError(28, "No space left on device"),
    "GPU lost": lambda: RuntimeError("CUDA failed with error unknown error"),
}

GPU_LOST = {
    "ctranslate2 error 999": lambda: RuntimeError("CUDA failed with error unknown error"),
    "torch error 999": lambda: torch.AcceleratorError(
        "CUDA error: unknown error\nCUDA kernel errors might be asynchronously reported at some "
        "other API call, so the stacktrace below might be incorrect."),
    "illegal address": lambda: RuntimeError("CUDA error: an illegal memory access was encountered"),
    "fallen off the bus": lambda: RuntimeError("CUDA failed with error GPU has fallen off the bus"),
    "busy or unavailable": lambda: RuntimeError(
        "CUDA failed with error CUDA-capable device(s) is/are busy or unavailable"),
    "driver replaced mid-run": lambda: RuntimeError(
        "CUDA failed with error CUDA driver version is insufficient for CUDA runtime version"),
}

NOT_GPU_LOST = {
    **{f"OOM: {name}": make for name, make in OUT_OF_MEMORY.items()},
    "model unloaded": NOT_OUT_OF_MEMORY["model unloaded"],
    "unknown error without CUDA": lambda: RuntimeError("unknown error"),
    "not a RuntimeError": lambda: ValueError("CUDA failed with error unknown error"),
}


def exception(make):
    """Build the exception; constructors that this torch lacks skip the case."""
    try:
        return make()
    except (AttributeError, TypeError) as exc:
        pytest.skip(f"cannot construct it here: {exc}")


class TestIsOutOfMemory:
    """Every form an OOM takes is recognised, and nothing that merely looks like one."""

    @pytest.mark.parametrize("name", OUT_OF_MEMORY)
    def test_recognises(self, name):
        assert is_out_of_memory(exception(OUT_OF_MEMORY[name]))

    @pytest.mark.parametrize("name", NOT_OUT_OF_MEMORY)
    def test_rejects(self, name):
        assert not is_out_of_memory(exception(NOT_OUT_OF_MEMORY[name]))

    def test_the_real_ctranslate2_driver_error_says_cuda_failed_but_is_no_oom(self):
        error = ctranslate2_cuda_error()
        assert str(error).startswith("CUDA failed with error")
        assert not is_out_of_memory(error)

    def test_torch_oom_types_are_runtime_errors(self):
        """A bare `except RuntimeError` elsewhere would catch them: the classifier goes by type first."""
        assert issubclass(torch.OutOfMemoryError, RuntimeError)
        assert torch.cuda.OutOfMemoryError is torch.OutOfMemoryError


class TestIsGpuLost:
    """A lost GPU (error 999, device lost, illegal address) is told apart from OOM."""

    @pytest.mark.parametrize("name", GPU_LOST)
    def test_recognises(self, name):
        assert is_gpu_lost(exception(GPU_LOST[name]))

    @pytest.mark.parametrize("name", NOT_GPU_LOST)
    def test_rejects(self, name):
        assert not is_gpu_lost(exception(NOT_GPU_LOST[name]))


class TestNextBatchSize:
    """Halving, down to 1, then nothing."""

    @pytest.mark.parametrize(("size", "smaller"), [(16, 8), (8, 4), (3, 1), (2, 1), (1, None)])
    def test_halves(self, size, smaller):
        assert next_batch_size(size) == smaller


class TestBatchGovernor:
    """The batch size for the next attempt: halved on OOM, probed back up after a run of successes."""

    def test_halves_down_to_1_then_reports_none(self):
        governor = BatchGovernor(ceiling=16, probe_after=3)
        assert [governor.lower() for _ in range(5)] == [8, 4, 2, 1, None]
        assert governor.current == 1

    def test_lowered_size_stays_until_a_run_of_successes(self):
        governor = BatchGovernor(ceiling=16, probe_after=3)
        governor.lower()
        governor.lower()
        for _ in range(2):
            governor.succeeded()
            assert governor.current == 4
        governor.succeeded()
        assert governor.current == 8

    def test_probes_up_one_doubling_per_run_and_never_past_the_ceiling(self):
        governor = BatchGovernor(ceiling=16, probe_after=2)
        while governor.lower() is not None:
            pass
        sizes = []
        for _ in range(12):
            governor.succeeded()
            sizes.append(governor.current)
        assert sizes == [1, 2, 2, 4, 4, 8, 8, 16, 16, 16, 16, 16]

    def test_an_oom_during_the_run_restarts_the_count(self):
        governor = BatchGovernor(ceiling=16, probe_after=2)
        governor.lower()                      # 8
        governor.succeeded()                  # streak 1
        governor.lower()                      # 4, streak 0
        governor.succeeded()                  # streak 1
        assert governor.current == 4
        governor.succeeded()                  # streak 2: probe
        assert governor.current == 8

    def test_a_probe_that_ooms_halves_again(self):
        governor = BatchGovernor(ceiling=16, probe_after=1)
        governor.lower()
        governor.succeeded()
        assert governor.current == 16
        assert governor.lower() == 8

    def test_probing_up_is_one_log_event(self):
        governor = BatchGovernor(ceiling=8, probe_after=1)
        governor.lower()
        with capture_logs() as events:
            governor.succeeded()
        assert events == [{"event": "engine.batch_probe_up", "log_level": "info",
                           "old_batch_size": 4, "new_batch_size": 8}]

    def test_successes_at_the_ceiling_change_nothing(self):
        governor = BatchGovernor(ceiling=4, probe_after=1)
        for _ in range(3):
            governor.succeeded()
        assert governor.current == 4
