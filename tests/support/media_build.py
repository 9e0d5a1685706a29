"""Building the media forms with the ffmpeg binary (argument lists, no shell), or PyAV's bundled
FFmpeg where the binary lacks an encoder; the matrix of what was built; and where the speech lies
in a decoded form (`speech_position`).

Builds are deterministic (bitexact muxing and encoding, one thread, fixed inputs): the same WAV
gives the same bytes. The ffmpeg binary of this machine (Debian's 5.1) lacks some encoders (no
AMR-NB: it is built without libopencore-amrnb); `unbuildable` says which forms it cannot make
and why, and forms with a `pyav` recipe are then made with PyAV's bundled FFmpeg instead.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import tempfile
import wave
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np

from .media_form import LONGER_BY, Form

StrPath = str | os.PathLike[str]

#: ffmpeg's own options for every build: quiet, never asking, reproducible bytes, one thread.
FFMPEG_GLOBAL = ("-nostdin", "-hide_banner", "-loglevel", "error", "-y")
FFMPEG_OUTPUT = ("-fflags", "+bitexact", "-flags:v", "+bitexact", "-flags:a", "+bitexact",
                 "-threads", "1")
SRT_TEXT = "1\n00:00:00,500 --> 00:00:02,000\n[music]\n\n2\n00:00:03,000 --> 00:00:05,000\nHello\n\n"
#: The envelope hop `speech_position` compares at: 5 ms at 16 kHz.
_HOP = 80


@dataclass(frozen=True)
class Matrix:
    """The forms this machine made from one speech WAV, and those it could not make, with why."""

    speech: Path
    seconds: float
    built: dict[str, Path]
    unbuilt: dict[str, str]

    def form_file(self, name: str) -> Path | None:
        """Where the form `name` was built, None where this machine could not make it."""
        return self.built.get(name)


def build_matrix(source: StrPath, folder: StrPath, forms: Iterable[Form]) -> Matrix:
    """Every form this machine can make, from `source` (a corpus clip) turned into the speech
    WAV, into `folder`."""
    folder = Path(folder)
    speech = speech_wav(source, folder / "_speech" / "speech.wav")
    built, unbuilt = build_all(speech, folder / "forms", forms)
    return Matrix(speech, speech_seconds(speech), built, unbuilt)



def speech_position(decoded: np.ndarray, reference: np.ndarray,
                    rate: int = 16_000) -> tuple[float, float, float]:
    """Where the reference speech lies in `decoded` (both mono float samples at `rate`): its lag in
    seconds (the position of the reference's first sample), how well the loudness envelopes match
    there (normalised correlation, 1 = the same), and its level against the reference in dB."""
    def envelope(samples: np.ndarray) -> np.ndarray:
        frames = len(samples) // _HOP
        blocks = samples[: frames * _HOP].reshape(frames, _HOP).astype(np.float64)
        envelope: np.ndarray = np.log(np.sqrt(np.mean(blocks**2, axis=1) + 1e-12))
        return envelope

    ours, theirs = envelope(decoded), envelope(reference)
    ours, theirs = ours - ours.mean(), theirs - theirs.mean()
    size = 1 << int(np.ceil(np.log2(len(ours) + len(theirs))))
    correlation = np.fft.irfft(np.fft.rfft(ours, size) * np.conj(np.fft.rfft(theirs, size)), size)
    lags = np.concatenate([np.arange(0, len(ours)), np.arange(-len(theirs) + 1, 0)])
    values = np.concatenate([correlation[: len(ours)], correlation[size - len(theirs) + 1:]])
    lag = int(lags[int(np.argmax(values))])
    start_ours, start_theirs = max(lag, 0), max(-lag, 0)
    length = min(len(ours) - start_ours, len(theirs) - start_theirs)
    a = ours[start_ours:start_ours + length] - ours[start_ours:start_ours + length].mean()
    b = theirs[start_theirs:start_theirs + length] - theirs[start_theirs:start_theirs + length].mean()
    match = float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12))
    piece = decoded[max(lag * _HOP, 0): max(lag * _HOP, 0) + len(reference)].astype(np.float64)
    level = 20 * np.log10(np.sqrt(np.mean(piece**2)) / np.sqrt(np.mean(reference.astype(np.float64) ** 2))
                          + 1e-12)
    return lag * _HOP / rate, match, float(level)


def speech_wav(source: StrPath, out: StrPath) -> Path:
    """`source` (any audio file, e.g. a corpus clip) as the 16 kHz mono 16-bit WAV every form is
    built from (and the reference form is a copy of)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    _run([ffmpeg_path(), *FFMPEG_GLOBAL, "-i", str(source), "-map", "0:a:0", "-ac", "1", "-ar", "16000",
          "-c:a", "pcm_s16le", "-map_metadata", "-1", *FFMPEG_OUTPUT, str(out)])
    return out


def speech_seconds(wav: StrPath) -> float:
    """The length of a WAV, from its header."""
    with wave.open(str(wav), "rb") as source:
        return source.getnframes() / source.getframerate()


def ffmpeg_command(form: Form, speech: StrPath, out: StrPath,
                   assets: StrPath) -> list[str]:
    """The ffmpeg argument list that builds `form` from `speech` into `out` (`assets`: the folder
    holding the subtitle, cover and data files the placeholders name; see `write_assets`)."""
    seconds = speech_seconds(speech)
    assets = Path(assets)
    values = {"speech": str(speech), "seconds": f"{seconds:.3f}", "long": f"{seconds + LONGER_BY:.3f}",
              "subs": str(assets / "subs.srt"), "cover": str(assets / "cover.png"),
              "blob": str(assets / "blob.bin")}
    args = [arg.format(**values) for arg in form.args]
    return [ffmpeg_path(), *FFMPEG_GLOBAL, *args, *FFMPEG_OUTPUT, "pipe:1" if form.pipe else str(out)]


def write_assets(folder: StrPath) -> Path:
    """Write the small fixed inputs some forms take (subtitles, a cover picture, data bytes)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "subs.srt").write_text(SRT_TEXT, encoding="utf-8")
    (folder / "blob.bin").write_bytes(bytes(range(256)) * 8)
    cover = folder / "cover.png"
    if not cover.exists():
        _run([ffmpeg_path(), *FFMPEG_GLOBAL, "-f", "lavfi", "-i", "testsrc=size=64x64:rate=1:duration=1",
              "-frames:v", "1", *FFMPEG_OUTPUT, str(cover)])
    return folder


def build(form: Form, speech: StrPath, folder: StrPath,
          fallback: bool = True) -> Path:
    """Build `form` from the speech WAV into `folder` (named after the form); with `fallback`, a
    form whose encoder this ffmpeg lacks is made with PyAV when it has a recipe. Raises
    FormUnbuildable saying why a form cannot be made."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / f"{form.name}{form.suffix}"
    missing = missing_tools(form) if shutil.which("ffmpeg") else ["the ffmpeg binary"]
    if missing:
        if fallback and form.pyav is not None:
            return _build_with_pyav(form, speech, out)
        raise FormUnbuildable(form.name, f"this ffmpeg lacks {', '.join(missing)}")
    command = ffmpeg_command(form, speech, out, write_assets(folder / "_assets"))
    if form.pipe:
        with open(out, "wb") as sink:
            _run(command, stdout=sink, form=form)
    else:
        _run(command, form=form)
    return out


def build_all(speech: StrPath, folder: StrPath,
              forms: Iterable[Form]) -> tuple[dict[str, Path], dict[str, str]]:
    """Build every form it can: {name: path} of those built, {name: why} of those not."""
    built, failed = {}, {}
    for form in forms:
        try:
            built[form.name] = build(form, speech, folder)
        except FormUnbuildable as exc:
            failed[form.name] = exc.reason
    return built, failed


def unbuildable(speech: StrPath, forms: Iterable[Form],
                fallback: bool = False) -> dict[str, str]:
    """The forms this machine cannot make, and why: an encoder or muxer missing from `ffmpeg
    -encoders`/`-muxers`, or (actually tried, in a scratch folder) ffmpeg refusing the arguments.
    With `fallback`, forms PyAV can make instead are not counted."""
    reasons = {}
    with tempfile.TemporaryDirectory(prefix="media-forms-") as scratch:
        for form in forms:
            try:
                build(form, speech, scratch, fallback=fallback)
            except FormUnbuildable as exc:
                reasons[form.name] = exc.reason
    return reasons


def missing_tools(form: Form) -> list[str]:
    """The encoders and the muxer `form` needs that this ffmpeg does not list."""
    encoders, muxers = _ffmpeg_list("-encoders"), _ffmpeg_list("-muxers")
    missing = [f"encoder {name}" for name in form.encoders if name not in encoders]
    if form.muxer and form.muxer not in muxers:
        missing.append(f"muxer {form.muxer}")
    return missing


class FormUnbuildable(Exception):
    """A form this machine cannot make, and why."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"{name}: {reason}")
        self.name, self.reason = name, reason


def ffmpeg_path() -> str:
    """The ffmpeg binary's absolute path; FormUnbuildable when there is none."""
    path = shutil.which("ffmpeg")
    if path is None:
        raise FormUnbuildable("*", "there is no ffmpeg binary")
    return path


@functools.cache
def _ffmpeg_list(flag: str) -> frozenset[str]:
    """The names in `ffmpeg -encoders` or `ffmpeg -muxers`."""
    text = subprocess.run([ffmpeg_path(), "-hide_banner", flag], capture_output=True, text=True,
                          check=False).stdout
    # Rows look like " A....D aac   AAC ..." (encoders) or "  E mp4  MP4 ..." (muxers).
    pattern = r"^\s*[A-Z.]{6}\s+(\S+)" if flag == "-encoders" else r"^\s*D?E\s+(\S+)"
    names: set[str] = set()
    for line in text.splitlines():
        match = re.match(pattern, line)
        if match and match.group(1) != "=":
            names.update(match.group(1).split(","))
    return frozenset(names)


def _run(command: list[str], stdout: IO[bytes] | None = None, form: Form | None = None) -> None:
    """Run ffmpeg; FormUnbuildable with its last error line when it fails."""
    done = subprocess.run(command, stdout=stdout if stdout is not None else subprocess.DEVNULL,
                          stderr=subprocess.PIPE, check=False, timeout=120)
    if done.returncode != 0:
        lines = done.stderr.decode("utf-8", "replace").strip().splitlines() or [f"exit {done.returncode}"]
        raise FormUnbuildable(form.name if form else "?", f"ffmpeg failed: {lines[-1]}")


def _build_with_pyav(form: Form, speech: StrPath, out: Path) -> Path:
    """Encode the speech with PyAV's bundled FFmpeg (an audio-only form whose encoder the ffmpeg
    binary lacks, e.g. AMR-NB)."""
    import av

    recipe = form.pyav
    if recipe is None:
        raise FormUnbuildable(form.name, "it has no PyAV recipe")
    with wave.open(str(speech), "rb") as source:
        rate, width, channels = source.getframerate(), source.getsampwidth(), source.getnchannels()
        if width != 2:
            raise FormUnbuildable(form.name, "the PyAV fallback reads 16-bit WAVs only")
        pcm = np.frombuffer(source.readframes(source.getnframes()), "<i2").reshape(-1, channels)
    mono = (pcm.mean(axis=1) / 32768.0).astype(np.float32).reshape(1, -1)
    with av.open(str(out), "w", format=recipe.container_format) as container:
        stream = container.add_stream(recipe.codec, rate=recipe.sample_rate, layout="mono")
        if recipe.bit_rate:
            stream.bit_rate = recipe.bit_rate
        frame = av.AudioFrame.from_ndarray(mono, format="flt", layout="mono")
        frame.sample_rate = rate
        resampler = av.AudioResampler(format=stream.codec_context.format.name, layout="mono",
                                      rate=recipe.sample_rate)
        for chunk in [*resampler.resample(frame), *resampler.resample(None)]:
            chunk.pts = None
            container.mux(stream.encode(chunk))
        container.mux(stream.encode(None))  # flush the encoder
    return out
