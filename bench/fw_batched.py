"""faster-whisper's own batched loop, as a user would write it instead of the daemon: the model
loaded once (`WhisperModel`, the model folder, device, compute type and threads the daemon's
engine would use: `common.engine_settings`), then `BatchedInferencePipeline.transcribe` per file
with faster-whisper's defaults (its Silero VAD, batch 8 unless `--batch`, the config's beam
size, the language the engine would load the model with), the audio decoded by
`faster_whisper.decode_audio`. The model is built on the main thread, as a user's script does;
with `on_a_thread` on a thread of its own, as the daemon builds its models (engine/openmp.py:
CTranslate2 then decodes about twice as fast on the CPU), the best this loop can do.

`FwBatchedWay` is the harness's way (harness.py) running it as a child process; run as a script
(`python bench/fw_batched.py --config FILE`) it is that child: it answers one JSON line when
loaded, then reads file paths on stdin and answers one JSON line per file.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from common import (LIBRARY_ENV, Folders, Item, Sections, close_child, engine_settings, gpu_mib,
                    proc_status_mib)
from harness import Done

from transcribed.config import load_config
from transcribed.engine.openmp import built_on_a_thread
from transcribed.engine.whisperx_setup import load_model_arguments

#: faster-whisper's own default batch size for `BatchedInferencePipeline.transcribe`.
DEFAULT_BATCH = 8


class FwBatchedWay:
    """faster-whisper's BatchedInferencePipeline loop in a child process, one file at a time."""

    kind = "fw-batched"

    def __init__(self, name: str, root: Path, sections: Sections, batch: int = DEFAULT_BATCH,
                 on_a_thread: bool = False) -> None:
        self.name, self.root, self.sections, self.batch = name, root, sections, batch
        self.on_a_thread = on_a_thread
        self.process: subprocess.Popen[str] | None = None
        self.gpu_peak: float | None = None

    def start(self) -> None:
        folders = Folders(self.root)
        folders.write_config(**self.sections)
        self.log = open(self.root / "fw-batched.log", "w")  # noqa: SIM115 (closed in close)
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--config", str(folders.config), "--batch", str(self.batch),
             *(["--on-a-thread"] if self.on_a_thread else [])],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, text=True,
            env={**os.environ, **LIBRARY_ENV})
        self._answer()

    def run(self, items: list[Item], tag: str) -> dict[Path, Done]:
        assert self.process is not None and self.process.stdin is not None
        results = {}
        for item in items:
            self.process.stdin.write(f"{item.path}\n")
            self.process.stdin.flush()
            answer = self._answer()
            results[item.path] = Done(answer["text"], {"decode": answer["decode_s"],
                                                       "vad + transcribe": answer["wall_s"] - answer["decode_s"]})
        if (used := gpu_mib(self.process.pid)) is not None:
            self.gpu_peak = max(self.gpu_peak or 0.0, used)
        return results

    def _answer(self) -> dict[str, object]:
        assert self.process is not None and self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"{self.name} exited ({self.process.wait()}); see {self.log.name}")
        answer: dict[str, object] = json.loads(line)
        return answer

    def peaks(self) -> tuple[float | None, float | None]:
        assert self.process is not None
        return proc_status_mib(self.process.pid, "VmHWM"), self.gpu_peak

    def close(self) -> None:
        if self.process is None:
            return
        close_child(self.process, self.log)


def _serve(config_path: Path, batch: int, on_a_thread: bool) -> int:
    """The child: load, answer, then one answer per path read."""
    answers = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # whatever the libraries print goes to the log, not into the answers
    started = time.perf_counter()
    from faster_whisper import BatchedInferencePipeline, WhisperModel, decode_audio

    config = load_config(config_path)
    settings = engine_settings(config)
    language = load_model_arguments(config, settings)["language"]

    def build() -> WhisperModel:
        return WhisperModel(settings.model_path, device=settings.device, device_index=settings.device_index,
                            compute_type=settings.compute_type, cpu_threads=settings.cpu_threads)

    model = built_on_a_thread(build) if on_a_thread else build()
    pipe = BatchedInferencePipeline(model)
    answers.write(json.dumps({"load_s": time.perf_counter() - started}) + "\n")
    for line in sys.stdin:
        path = line.strip()
        began = time.perf_counter()
        audio = decode_audio(path, sampling_rate=16_000)
        decoded = time.perf_counter()
        segments, _info = pipe.transcribe(audio, language=language, batch_size=batch,
                                          beam_size=config.model.beam_size)
        text = " ".join(s.text.strip() for s in segments).strip()
        answers.write(json.dumps({"audio_s": len(audio) / 16_000, "wall_s": time.perf_counter() - began,
                                  "decode_s": decoded - began, "text": text}) + "\n")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--batch", type=int, default=DEFAULT_BATCH)
    parser.add_argument("--on-a-thread", action="store_true", help="build the model on a thread of its own")
    args = parser.parse_args()
    sys.exit(_serve(args.config, args.batch, args.on_a_thread))
