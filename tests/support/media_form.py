"""One media form of the conformance matrix, as data (`Form`), and the ffmpeg input snippets the
catalogue (media_forms.py) builds its forms from.

Placeholders in `Form.args`: `{speech}` the speech WAV; `{seconds}` its length; `{long}` its
length plus `LONGER_BY` (a video that outlasts its audio); `{subs}` a small SRT file; `{cover}` a
small PNG; `{blob}` a few bytes for a data stream. media_build.py fills them in.
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: How much longer than the speech a video outlasting its audio is, in seconds.
LONGER_BY = 4.0


@dataclass(frozen=True)
class PyAVRecipe:
    """How to make a form with PyAV's FFmpeg when the ffmpeg binary lacks its encoder (audio only)."""

    container_format: str
    codec: str
    sample_rate: int
    bit_rate: int | None = None


@dataclass(frozen=True)
class Form:
    """One way the speech can arrive: a file made by ffmpeg, and what decoding it must give."""

    name: str
    #: The file's suffix, with its dot (the daemon takes files by extension).
    suffix: str
    #: ffmpeg arguments between the global options and the output path: inputs, -map, codecs.
    args: tuple[str, ...]
    #: Where the chosen audio stream starts on the media's clock (`Audio.offset_seconds`), as
    #: built; the decoder may report up to a codec's priming less (AAC: 2.936 for 3.0), the
    #: priming samples then lead the decoded audio, so `speech_at` still holds.
    offset: float = 0.0
    #: Silence at the head of the audio stream itself (adelay): the speech starts this much later.
    lead: float = 0.0
    #: Where the speech is: mono, both (stereo), left (right silent), centre (5.1, FC only).
    channel: str = "mono"
    #: The `audio.track` setting the job uses, and the audio stream number it must choose.
    track: str | int | tuple[str, ...] = "auto"
    stream: int = 0
    #: ffmpeg encoders and the muxer the form needs (checked against `ffmpeg -encoders/-muxers`).
    encoders: tuple[str, ...] = ()
    muxer: str = ""
    #: Write through ffmpeg's stdout: an unseekable output, as a browser or a live recorder
    #: writes it (Matroska/WebM then has no duration, no cues).
    pipe: bool = False
    #: Made with PyAV when the ffmpeg binary cannot (audio-only forms).
    pyav: PyAVRecipe | None = None
    #: What the form stands for, and its traps.
    notes: str = ""
    tags: tuple[str, ...] = field(default=())

    @property
    def speech_at(self) -> float:
        """Where the WAV's first sample is heard on the media's clock."""
        return self.offset + self.lead

    @property
    def video(self) -> bool:
        return "video" in self.tags


#: The speech WAV as ffmpeg's input.
SPEECH = ("-i", "{speech}")


def video_in(rate: int = 5, size: str = "64x64", seconds: str = "{seconds}") -> tuple[str, ...]:
    """A synthetic video input: ffmpeg's test pattern, small and slow to keep builds cheap."""
    return ("-f", "lavfi", "-i", f"testsrc=size={size}:rate={rate}:duration={seconds}")


def music_in(rate: int = 48000) -> tuple[str, ...]:
    """A non-speech audio input as long as the speech: two steady tones (a stand-in for music)."""
    return ("-f", "lavfi", "-i",
            f"aevalsrc=0.2*sin(2*PI*220*t)+0.1*sin(2*PI*331*t):s={rate}:d={{seconds}}")


def silence_in(rate: int = 48000) -> tuple[str, ...]:
    """Digital silence as long as the speech."""
    return ("-f", "lavfi", "-i", f"aevalsrc=0:s={rate}:d={{seconds}}")


def late(seconds: float) -> tuple[str, ...]:
    """Shift the next input's timestamps: its stream starts `seconds` after the others."""
    return ("-itsoffset", f"{seconds:g}")


#: A fast, small H.264 video encoding.
X264 = ("-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p")
#: The speech on the left channel only (right silent), and in the 5.1 centre channel only.
LEFT_ONLY = "pan=stereo|c0=c0|c1=0*c0"
CENTRE_ONLY = "pan=5.1|FC=c0"
