"""Engines: what turns decoded audio into a transcript. One Protocol, a real and a fake one.

base.py            the Engine Protocol (the seam), Request, Transcript and the segment types
whisperx_engine.py the real engine: a resident WhisperX pipeline (CTranslate2 Whisper + a VAD)
fake.py            FakeEngine: deterministic text, scriptable failures, for fast tests and demos
decoding.py        batched Whisper decoding of speech chunks, as whisperx does it, and what it leaves out
chunks.py          files' speech chunks decoded in batches, one transcript per file; long ones rechecked
recheck.py         a long recording's speech that no decoded word starts in, decoded again and put in place
packing.py         short files laid into one 30 s window: which share a window, and where each goes
shared_window.py   a packed window encoded once, each piece decoded from it
audio_windows.py   the samples one call reads, cut from a file's speech chunks
silero.py          the light VAD (Silero as ONNX, no download)
hardware.py        deciding `auto`: device, compute type, batch size, threads, and why
catalogue.py       the models a config names, their settings and sizes, the budget they share
resident.py        which models stay loaded within the budget (LRU), out-of-memory on loading
whisperx_setup.py  what whisperx is loaded with: load_model's arguments, the decoding options
models.py          finding the Whisper model: bundled, a local folder, or a named one
hub_cache.py       a named model in the download folder: the hub's cache layout, its record, each file's hash
download.py        downloading a named model from the hub or a mirror: resumed, checked, with progress
oom.py             out of memory against a lost GPU, and the batch size that backs off
environment.py     what the libraries read from the environment: offline, private
"""

from __future__ import annotations

from .base import Engine, EngineSettings, Request

__all__ = ["Engine", "EngineSettings", "Request"]
