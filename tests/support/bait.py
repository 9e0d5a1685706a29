"""Generated audio for the quality tests: speech spoken by espeak-ng, noise and plucked tones from
sox, a two-track video from ffmpeg. A missing tool fails the test in CI (never a silent skip)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

#: The text of each track of the two-track video (English first, German flagged default).
ENGLISH_TEXT = "Hello, this is the English track of the film."
GERMAN_TEXT = "Hallo, das ist die deutsche Tonspur des Films."
#: The looped phrase: said 8 times in a row.
LOOPED_PHRASE = "I will see you tomorrow."


def need(*tools: str) -> None:
    """Fail (in CI) or skip (elsewhere) when a tool the test builds its input with is missing."""
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if missing:
        message = f"needs {', '.join(missing)} (apt install espeak-ng sox ffmpeg)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


def run(*command: str) -> None:
    subprocess.run(command, check=True, capture_output=True, timeout=120)


def speak(path: Path, text: str, voice: str = "en-us") -> Path:
    """espeak-ng reading `text` into a WAV (22 kHz mono)."""
    need("espeak-ng")
    run("espeak-ng", "-v", voice, "-w", str(path), text)
    return path


def two_track_video(path: Path, german_volume: float = 1.0, seconds: float = 5.0) -> Path:
    """A Matroska video with two audio streams: English (tagged eng) first, German (tagged ger,
    flagged default) second, both padded to the video's length; the German one at
    `german_volume` (so a test can tell the two apart by loudness)."""
    need("espeak-ng", "ffmpeg")
    english = speak(path.with_suffix(".en.wav"), ENGLISH_TEXT)
    german = speak(path.with_suffix(".de.wav"), GERMAN_TEXT, "de")
    run("ffmpeg", "-loglevel", "error", "-y", "-f", "lavfi", "-i", f"color=black:s=64x64:d={seconds}",
        "-i", str(english), "-i", str(german), "-map", "0:v", "-map", "1:a", "-map", "2:a",
        "-filter:a:0", f"apad=whole_dur={seconds}",
        "-filter:a:1", f"apad=whole_dur={seconds},volume={german_volume}",
        "-c:v", "libx264", "-c:a", "aac", "-metadata:s:a:0", "language=eng",
        "-metadata:s:a:1", "language=ger", "-disposition:a:0", "0", "-disposition:a:1", "default",
        str(path))
    english.unlink()
    german.unlink()
    return path


def looped_phrase(path: Path, times: int = 8) -> Path:
    """One phrase spoken `times` times in a row (a loop, as Whisper sometimes writes one)."""
    return speak(path, " ".join([LOOPED_PHRASE] * times))


def pink_noise(path: Path, seconds: float = 10.0) -> Path:
    need("sox")
    run("sox", "-n", "-r", "16000", str(path), "synth", str(seconds), "pinknoise", "vol", "0.5")
    return path


def plucked_tones(path: Path, seconds: float = 10.0) -> Path:
    """Music-like audio: a plucked C major chord, every half second."""
    need("sox")
    run("sox", "-n", "-r", "16000", str(path), "synth", "0.5", "pluck", "C4", "pluck", "E4",
        "pluck", "G4", "repeat", str(max(0, int(seconds * 2) - 1)), "remix", "-", "vol", "0.7")
    return path


def padded_with_silence(path: Path, text: str, before: float = 10.0, after: float = 10.0) -> Path:
    """Speech with `before` and `after` seconds of digital silence around it."""
    need("sox")
    speech = speak(path.with_suffix(".speech.wav"), text)
    run("sox", str(speech), "-r", "16000", str(path), "pad", str(before), str(after))
    speech.unlink()
    return path
