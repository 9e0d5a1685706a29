"""The engine the daemon wraps, without the daemon: a plain in-process whisperx loop, and the
whisperx command line once per file.

Both are built from the engine's own settings, not from a copy: the same config file a bench
daemon reads, the model resolved and every `auto` decided by transcribed's own code
(`common.engine_settings`: resolve_model, probe, choose), and `whisperx.load_model` called with
exactly the arguments `WhisperXEngine.load` passes (`load_model_arguments`). What the loop does
not take from the daemon is the daemon: no VAD step setting, no prefetch, no batching across
files, no gc.freeze; `pipe.transcribe` as a user would call it, the audio decoded as whisperx's
README does it, `whisperx.load_audio` (the ffmpeg command), or with `--decoder faster-whisper`
by faster_whisper.decode_audio (PyAV in-process; its per-file gc.collect walks every object of
torch and whisperx, about 0.3 s a file here). Without an ffmpeg binary the loop says so and uses
faster-whisper's.

Run as a script (`python bench/plain.py --config FILE`) it is the loop's child process: it
loads the pipeline, answers one JSON line, then reads file paths on stdin and answers one JSON
line per file.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from common import LIBRARY_ENV, SAMPLE_RATE, close_child, engine_settings, proc_status_mib, text_of

from transcribed.config import Config, load_config
from transcribed.engine.base import EngineSettings


# --- the plain loop --------------------------------------------------------------------------

#: How the plain loop may decode: whisperx's own load_audio (its default) or faster-whisper's.
DECODERS = ("whisperx", "faster-whisper")


class PlainLoop:
    """`python bench/plain.py --config FILE` in a child process: the loaded model, one file at a time."""

    def __init__(self, config: Path, log: Path, decoder: str = "whisperx") -> None:
        self.log = open(log, "w")
        self.process = subprocess.Popen([sys.executable, __file__, "--config", str(config),
                                         "--decoder", decoder],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log,
                                        text=True, env={**os.environ, **LIBRARY_ENV})
        started = self._answer()
        self.load_seconds, self.decoder = started["load_s"], started["decoder"]

    def transcribe(self, path: Path) -> dict[str, Any]:
        """{"audio_s", "wall_s", "decode_s", "text", "language"} for one file."""
        assert self.process.stdin is not None
        self.process.stdin.write(str(path) + "\n")
        self.process.stdin.flush()
        return self._answer()

    def _answer(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"the plain loop exited ({self.process.wait()}); see {self.log.name}")
        answer: dict[str, Any] = json.loads(line)
        if "error" in answer:
            raise RuntimeError(f"plain loop: {answer['error']}")
        return answer

    def peak_rss_mib(self) -> float:
        return proc_status_mib(self.process.pid, "VmHWM")

    def close(self) -> None:
        close_child(self.process, self.log)


def load_pipeline(config: Config, settings: EngineSettings) -> Any:
    """whisperx.load_model with exactly what WhisperXEngine.load passes, torch's threads as it
    sets them, the libraries quiet."""
    os.environ.update(LIBRARY_ENV)
    import logging
    import warnings

    warnings.filterwarnings("ignore", module="pyannote|torchaudio|lightning|speechbrain")
    import torch
    import whisperx

    from transcribed.engine.whisperx_setup import load_model_arguments

    for name in ("whisperx", "lightning", "lightning.pytorch", "pytorch_lightning", "pyannote"):
        logging.getLogger(name).setLevel(logging.WARNING)
    torch.set_num_threads(settings.cpu_threads)
    return whisperx.load_model(**load_model_arguments(config, settings))


def transcribe(pipe: Any, samples: Any, config: Config, settings: EngineSettings) -> dict[str, Any]:
    """`pipe.transcribe` with the engine's batch size and the config's chunk length."""
    result: dict[str, Any] = pipe.transcribe(samples, batch_size=settings.batch_size,
                                             language=pipe.preset_language,
                                             chunk_size=int(config.vad.chunk_seconds))
    if pipe.preset_language is None:
        pipe.tokenizer = None  # whisperx keeps a detected language otherwise (WHISPERX.md §1)
    return result


def audio_decoder(name: str) -> tuple[Callable[[str], Any], str]:
    """The loop's decoder and how to describe it: whisperx's own (the ffmpeg command, as its
    README's loop does), or faster-whisper's (PyAV in-process); whisperx's needs an ffmpeg binary."""
    if name == "whisperx" and shutil.which("ffmpeg"):
        from whisperx.audio import load_audio

        return (lambda path: load_audio(path, SAMPLE_RATE)), "whisperx.load_audio (the ffmpeg command)"
    from faster_whisper import decode_audio

    why = " (no ffmpeg binary for whisperx.load_audio)" if name == "whisperx" else ""
    return (lambda path: decode_audio(path, sampling_rate=SAMPLE_RATE)), f"faster_whisper.decode_audio{why}"


def _serve(config_path: Path, decoder_name: str) -> int:
    # Answers go to the real stdout; anything the libraries print goes to stderr.
    answers = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    config = load_config(config_path)
    settings = engine_settings(config)
    started = time.perf_counter()
    pipe = load_pipeline(config, settings)
    decode, described = audio_decoder(decoder_name)
    loaded = {"load_s": round(time.perf_counter() - started, 3), "decoder": described}
    answers.write(json.dumps(loaded) + "\n")

    for line in sys.stdin:
        path = Path(line.strip())
        started = time.perf_counter()
        try:
            samples = decode(str(path))
            decoded = time.perf_counter()
            result = transcribe(pipe, samples, config, settings)
        except Exception as exc:  # noqa: BLE001 - reported to the parent, which decides
            answers.write(json.dumps({"error": f"{path}: {type(exc).__name__}: {exc}"}) + "\n")
            continue
        answers.write(json.dumps({
            "audio_s": len(samples) / SAMPLE_RATE, "wall_s": time.perf_counter() - started,
            "decode_s": decoded - started, "text": text_of(result),
            "language": result.get("language")}) + "\n")
    return 0


# --- the whisperx command line ---------------------------------------------------------------

#: whisperx.audio.load_audio runs exactly this `ffmpeg` command; where there is no ffmpeg binary
#: the CLI gets this stand-in (PyAV, the decoder the daemon uses) on its PATH.
FFMPEG_STANDIN = '''#!{python}
"""Stand-in for `ffmpeg -nostdin -threads 0 -i FILE -f s16le -ac 1 -acodec pcm_s16le -ar RATE -`."""
import sys
import av
args = sys.argv[1:]
source, rate = args[args.index("-i") + 1], int(args[args.index("-ar") + 1])
resampler = av.AudioResampler(format="s16", layout="mono", rate=rate)
out = sys.stdout.buffer
with av.open(source) as container:
    for frame in container.decode(container.streams.audio[0]):
        for piece in resampler.resample(frame):
            out.write(piece.to_ndarray().tobytes())
    for piece in resampler.resample(None):
        out.write(piece.to_ndarray().tobytes())
'''


def cli_environment(scratch: Path) -> tuple[dict[str, str], str]:
    """The CLI's environment, and which ffmpeg it gets (the real one, or the PyAV stand-in)."""
    env = {**os.environ, **LIBRARY_ENV}
    if shutil.which("ffmpeg"):
        return env, "ffmpeg binary"
    bin_dir = scratch / "ffmpeg-standin"
    bin_dir.mkdir(exist_ok=True)
    standin = bin_dir / "ffmpeg"
    standin.write_text(FFMPEG_STANDIN.format(python=sys.executable))
    standin.chmod(0o755)
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    return env, "PyAV stand-in for ffmpeg (no ffmpeg binary here)"


def cli_command(path: Path, config: Config, settings: EngineSettings, out_dir: Path) -> list[str]:
    """`whisperx FILE` with the engine's settings, transcription only (no alignment)."""
    from transcribed.engine.whisperx_setup import load_model_arguments

    language = load_model_arguments(config, settings)["language"]
    # The CLI offers only default, float16, float32 and int8; int8_* are int8 with another
    # type for the rest, the nearest it has.
    compute_type = "int8" if settings.compute_type.startswith("int8") else settings.compute_type
    command = [str(Path(sys.executable).with_name("whisperx")), str(path),
               "--model", settings.model_path, "--compute_type", compute_type,
               "--device", settings.device, "--device_index", str(settings.device_index),
               "--no_align", "--batch_size", str(settings.batch_size),
               "--beam_size", str(config.model.beam_size), "--vad_onset", str(config.vad.onset),
               "--vad_offset", str(config.vad.offset), "--chunk_size", str(int(config.vad.chunk_seconds)),
               "--output_format", "json", "--output_dir", str(out_dir), "--verbose", "False",
               "--threads", str(settings.cpu_threads)]
    return command + (["--language", language] if language else [])


def run_cli(path: Path, config: Config, settings: EngineSettings, out_dir: Path,
            env: dict[str, str], log: Path) -> tuple[float, float, str]:
    """`whisperx FILE` once, as a cron script would: (wall seconds, peak RSS MiB, its text)."""
    with open(log, "a") as sink:
        started = time.perf_counter()
        process = subprocess.Popen(cli_command(path, config, settings, out_dir), stdout=sink,
                                   stderr=sink, env=env)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"whisperx {path.name} exited {os.waitstatus_to_exitcode(status)}; see {log}")
    text = text_of(json.loads((out_dir / f"{path.stem}.json").read_text(encoding="utf-8")))
    return wall, usage.ru_maxrss / 1024, text


if __name__ == "__main__":
    options = argparse.ArgumentParser(prog="plain.py", description=__doc__.split("\n\n")[0])
    options.add_argument("--config", type=Path, required=True, help="the bench daemon's config file")
    options.add_argument("--decoder", choices=DECODERS, default="whisperx", help="how the loop decodes audio")
    parsed = options.parse_args()
    sys.exit(_serve(parsed.config, parsed.decoder))
