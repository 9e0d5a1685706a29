"""pyannote's VAD model on the CPU: 8 windows per batch, and its LSTM in bfloat16 where the CPU
computes bfloat16 natively (bench/pyannote_cpu.py measures both).

pyannote's segmentation model (PyanNet: a SincNet front, a 4-layer bidirectional LSTM, linear
layers) spends about half its CPU time in the LSTM (torch's profiler, batch 32 of 5 s windows).
Where the CPU has AVX512-BF16 or AMX, oneDNN runs that LSTM in bfloat16 at 1.4x the speed, its
speech scores within 0.03 of float32's (mean difference 0.0004); a long recording's VAD takes
0.75x the time and the WER of the six long recordings of docs/performance.md moves by -1.2 to
+0.08 points. The SincNet front stays float32: in bfloat16 its instance norms lose quiet
samples (scores off by up to 0.99). Elsewhere (an older CPU, a GPU) nothing changes.
"""

from __future__ import annotations

from typing import Any

import torch

#: Windows per segmentation batch on the CPU; whisperx's 32 is a GPU's size, and on the CPU a
#: batch of 8 takes ~0.9x its time (its activations stay in the caches).
CPU_BATCH = 8


class Bfloat16Lstm(torch.nn.Module):
    """An LSTM run under CPU autocast to bfloat16, its output handed on as float32."""

    def __init__(self, lstm: torch.nn.LSTM) -> None:
        super().__init__()
        self.lstm = lstm

    def forward(self, inputs: torch.Tensor) -> tuple[torch.Tensor, Any]:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            outputs, state = self.lstm(inputs)
        return outputs.float(), state


def native_bfloat16() -> bool:
    """Whether this CPU computes bfloat16 in hardware (AVX512-BF16 or AMX tiles)."""
    try:
        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    except AttributeError:  # a torch without these probes: assume not
        return False


def lstm_in_bfloat16(model: Any) -> bool:
    """Run `model`'s LSTM in bfloat16 when it is PyanNet's single LSTM, on the CPU, and the CPU
    computes bfloat16 natively; True when it now does."""
    lstm = getattr(model, "lstm", None)
    if not isinstance(lstm, torch.nn.LSTM) or not native_bfloat16():
        return False
    if any(parameter.device.type != "cpu" for parameter in lstm.parameters()):
        return False
    model.lstm = Bfloat16Lstm(lstm)
    return True
