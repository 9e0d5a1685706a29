"""The media forms of the conformance matrix: the same speech in the containers, codecs, channel
layouts, sample rates and stream layouts that libraries, phones, DVRs, camcorders and conference
tools produce, each built from one speech WAV with the ffmpeg binary (argument lists, no shell).

A form is data (`Form`): the ffmpeg arguments (inputs and output options, with placeholders the
builder fills in), and what decoding it must give: which audio stream is chosen, where on the
media's clock (the player's time 0 is the earliest start of any stream) the speech's first
sample lands, which channel carries the speech. The matrix test transcribes each form and checks
that it ends done, that its text is within a small WER of the plain WAV's, and that its first
segment starts at `speech_at` plus the speech's own onset in the WAV.

Placeholders in `Form.args`: `{speech}` the speech WAV; `{seconds}` its length; `{long}` its
length plus `LONGER_BY` (a video that outlasts its audio); `{subs}` a small SRT file; `{cover}` a
small PNG; `{blob}` a few bytes for a data stream.

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
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import numpy as np

StrPath = str | os.PathLike[str]

#: The corpus clip every form carries: 5.2 s of one LibriSpeech speaker, speaking from the
#: first tenth of a second, which tiny.en transcribes word for word.
SPEECH_CLIP = "librispeech/1988-24833-0003.flac"
#: How much longer than the speech a video outlasting its audio is, in seconds.
LONGER_BY = 4.0
#: How far the measured start of the speech on the media's clock may be from `Form.speech_at`:
#: codec priming (AAC 1024 samples, Opus 312), MPEG-TS's 1.4 s base with frame-aligned video.
OFFSET_TOLERANCE = 0.12
#: ffmpeg's own options for every build: quiet, never asking, reproducible bytes, one thread.
FFMPEG_GLOBAL = ("-nostdin", "-hide_banner", "-loglevel", "error", "-y")
FFMPEG_OUTPUT = ("-fflags", "+bitexact", "-flags:v", "+bitexact", "-flags:a", "+bitexact",
                 "-threads", "1")
SRT_TEXT = "1\n00:00:00,500 --> 00:00:02,000\n[music]\n\n2\n00:00:03,000 --> 00:00:05,000\nHello\n\n"


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


# Inputs shared by many forms (ffmpeg input options and -i).
SPEECH = ("-i", "{speech}")


def _video_in(rate: int = 5, size: str = "64x64", seconds: str = "{seconds}") -> tuple[str, ...]:
    """A synthetic video input: ffmpeg's test pattern, small and slow to keep builds cheap."""
    return ("-f", "lavfi", "-i", f"testsrc=size={size}:rate={rate}:duration={seconds}")


def _music_in(rate: int = 48000) -> tuple[str, ...]:
    """A non-speech audio input as long as the speech: two steady tones (a stand-in for music)."""
    return ("-f", "lavfi", "-i",
            f"aevalsrc=0.2*sin(2*PI*220*t)+0.1*sin(2*PI*331*t):s={rate}:d={{seconds}}")


def _silence_in(rate: int = 48000) -> tuple[str, ...]:
    """Digital silence as long as the speech."""
    return ("-f", "lavfi", "-i", f"aevalsrc=0:s={rate}:d={{seconds}}")


def _late(seconds: float) -> tuple[str, ...]:
    """Shift the next input's timestamps: its stream starts `seconds` after the others."""
    return ("-itsoffset", f"{seconds:g}")


X264 = ("-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p")
LEFT_ONLY = "pan=stereo|c0=c0|c1=0*c0"
CENTRE_ONLY = "pan=5.1|FC=c0"

FORMS: tuple[Form, ...] = (
    # --- audio files: recorders, phones, libraries ------------------------------------------
    Form("wav_s16_16k_mono", ".wav", (*SPEECH, "-ac", "1", "-ar", "16000", "-c:a", "pcm_s16le"),
         encoders=("pcm_s16le",), muxer="wav", tags=("audio", "reference"),
         notes="The reference: the speech as a 16 kHz 16-bit WAV, what the daemon resamples to."),
    Form("wav_u8_11k", ".wav", (*SPEECH, "-ac", "1", "-ar", "11025", "-c:a", "pcm_u8"),
         encoders=("pcm_u8",), muxer="wav", tags=("audio", "pcm", "11k"),
         notes="8-bit unsigned PCM at 11.025 kHz: old dictaphones, Windows sound recorder."),
    Form("wav_mulaw_8k", ".wav", (*SPEECH, "-ac", "1", "-ar", "8000", "-c:a", "pcm_mulaw"),
         encoders=("pcm_mulaw",), muxer="wav", tags=("audio", "telephony", "8k"),
         notes="G.711 mu-law at 8 kHz: call recorders, PBX voicemail."),
    Form("wav_gsm_ms_8k", ".wav", (*SPEECH, "-ac", "1", "-ar", "8000", "-c:a", "libgsm_ms"),
         encoders=("libgsm_ms",), muxer="wav", tags=("audio", "telephony", "8k"),
         notes="GSM 6.10 (Microsoft framing) at 8 kHz: Windows-era call recorders."),
    Form("wav_s24_96k_stereo", ".wav", (*SPEECH, "-ac", "2", "-ar", "96000", "-c:a", "pcm_s24le"),
         channel="both", encoders=("pcm_s24le",), muxer="wav", tags=("audio", "pcm", "96k"),
         notes="24-bit 96 kHz stereo: field recorders. Six times the samples to resample."),
    Form("wav_f32_48k", ".wav", (*SPEECH, "-ac", "1", "-ar", "48000", "-c:a", "pcm_f32le"),
         encoders=("pcm_f32le",), muxer="wav", tags=("audio", "pcm", "48k"),
         notes="32-bit float WAV: 32-bit-float field recorders, DAW exports."),
    Form("aiff_s16be_44k", ".aiff", (*SPEECH, "-ac", "1", "-ar", "44100", "-c:a", "pcm_s16be"),
         encoders=("pcm_s16be",), muxer="aiff", tags=("audio", "pcm", "44k"),
         notes="Big-endian PCM in AIFF: macOS tools, older Apple software."),
    Form("aif_s24be_48k_stereo", ".aif", (*SPEECH, "-ac", "2", "-ar", "48000", "-c:a", "pcm_s24be",
                                          "-f", "aiff"),
         channel="both", encoders=("pcm_s24be",), muxer="aiff", tags=("audio", "pcm", "48k"),
         notes="24-bit AIFF, .aif: Logic/GarageBand bounces."),
    Form("caf_alac_44k", ".caf", (*SPEECH, "-ac", "1", "-ar", "44100", "-c:a", "alac"),
         encoders=("alac",), muxer="caf", tags=("audio", "lossless", "44k"),
         notes="Apple Lossless in CAF: iOS/macOS recording apps."),
    Form("m4a_aac_48k_voice_memo", ".m4a", (*SPEECH, "-ac", "1", "-ar", "48000", "-c:a", "aac",
                                            "-b:a", "64k", "-movflags", "+faststart", "-f", "ipod"),
         encoders=("aac",), muxer="ipod", tags=("audio", "phone", "48k"),
         notes="AAC-LC mono 48 kHz, moov first: iPhone Voice Memos, Android recorders."),
    Form("m4a_alac_96k", ".m4a", (*SPEECH, "-ac", "2", "-ar", "96000", "-c:a", "alac", "-f", "ipod"),
         channel="both", encoders=("alac",), muxer="ipod", tags=("audio", "lossless", "96k"),
         notes="Apple Lossless at 96 kHz in an m4a: music libraries (hi-res)."),
    Form("mp3_44k_stereo_cover", ".mp3", ("-i", "{cover}", *SPEECH, "-map", "0:v", "-map", "1:a",
                                          "-c:v", "mjpeg", "-disposition:v:0", "attached_pic",
                                          "-id3v2_version", "3", "-ac", "2", "-ar", "44100",
                                          "-c:a", "libmp3lame", "-b:a", "128k"),
         channel="both", encoders=("mjpeg", "libmp3lame"), muxer="mp3",
         tags=("audio", "cover", "44k"),
         notes="Podcast/audiobook mp3 with ID3v2 cover art (an attached-picture video stream)."),
    Form("mp3_8k_mono", ".mp3", (*SPEECH, "-ac", "1", "-ar", "8000", "-c:a", "libmp3lame",
                                 "-b:a", "16k"),
         encoders=("libmp3lame",), muxer="mp3", tags=("audio", "8k"),
         notes="MPEG-2.5 layer III at 8 kHz: cheap voice recorders, answering machines."),
    Form("aac_adts_22k", ".aac", (*SPEECH, "-ac", "1", "-ar", "22050", "-c:a", "aac", "-b:a", "48k",
                                  "-f", "adts"),
         encoders=("aac",), muxer="adts", tags=("audio", "22k"),
         notes="Raw ADTS AAC: dashcams, radio rips. No duration header: estimated from bitrate."),
    Form("flac_22k_cover", ".flac", ("-i", "{cover}", *SPEECH, "-map", "0:v", "-map", "1:a",
                                     "-c:v", "png", "-disposition:v:0", "attached_pic",
                                     "-ac", "1", "-ar", "22050", "-c:a", "flac"),
         encoders=("png", "flac"), muxer="flac", tags=("audio", "cover", "lossless", "22k"),
         notes="FLAC at 22.05 kHz (LJSpeech-like) with a PICTURE block."),
    Form("ogg_vorbis_22k", ".ogg", (*SPEECH, "-ac", "1", "-ar", "22050", "-c:a", "libvorbis",
                                    "-q:a", "3"),
         encoders=("libvorbis",), muxer="ogg", tags=("audio", "22k"),
         notes="Ogg Vorbis: games, Linux recorders. Duration from the last granule (no header)."),
    Form("oga_flac_48k", ".oga", (*SPEECH, "-ac", "1", "-ar", "48000", "-c:a", "flac", "-f", "oga"),
         encoders=("flac",), muxer="oga", tags=("audio", "lossless", "48k"),
         notes="FLAC in Ogg, .oga."),
    Form("opus_voice_note", ".opus", (*SPEECH, "-ac", "1", "-c:a", "libopus", "-b:a", "24k",
                                      "-application", "voip", "-f", "opus"),
         encoders=("libopus",), muxer="opus", tags=("audio", "phone", "48k"),
         notes="Ogg Opus voice note (WhatsApp, Telegram, Signal): 48 kHz internally, pre-skip 312."),
    Form("webm_opus_browser", ".webm", (*SPEECH, "-ac", "1", "-c:a", "libopus", "-b:a", "32k",
                                        "-f", "webm"),
         pipe=True, encoders=("libopus",), muxer="webm", tags=("audio", "conference", "48k"),
         notes="Browser MediaRecorder / web-conference recording: written as a stream, so no "
               "duration and no cues anywhere: nothing declares a length."),
    Form("mka_eac3_51_centre", ".mka", (*SPEECH, "-af", CENTRE_ONLY, "-ar", "48000", "-c:a", "eac3",
                                        "-b:a", "384k"),
         channel="centre", encoders=("eac3",), muxer="matroska", tags=("audio", "5.1", "48k"),
         notes="E-AC-3 5.1 with the dialogue in the centre channel only (film audio)."),
    Form("wma_wmav2_44k", ".wma", (*SPEECH, "-ac", "2", "-ar", "44100", "-c:a", "wmav2", "-b:a", "64k",
                                   "-f", "asf"),
         channel="both", encoders=("wmav2",), muxer="asf", tags=("audio", "44k"),
         notes="Windows Media Audio 2 in ASF: Windows dictation and music libraries."),
    Form("amr_nb_8k", ".amr", (*SPEECH, "-ac", "1", "-ar", "8000", "-c:a", "libopencore_amrnb",
                               "-b:a", "12.2k", "-f", "amr"),
         encoders=("libopencore_amrnb",), muxer="amr", tags=("audio", "phone", "8k"),
         pyav=PyAVRecipe("amr", "libopencore_amrnb", 8000, 12200),
         notes="AMR-NB 12.2 kbit/s: phone call and voice recorders. No duration header."),
    Form("3gp_amr_nb_voice", ".3gp", (*SPEECH, "-ac", "1", "-ar", "8000", "-c:a", "libopencore_amrnb",
                                      "-b:a", "12.2k", "-f", "3gp"),
         encoders=("libopencore_amrnb",), muxer="3gp", tags=("audio", "phone", "8k"),
         pyav=PyAVRecipe("3gp", "libopencore_amrnb", 8000, 12200),
         notes="AMR-NB in 3GP, audio only: feature-phone and Android voice recorders."),
    Form("spx_speex_16k", ".spx", (*SPEECH, "-ac", "1", "-ar", "16000", "-c:a", "libspeex",
                                   "-f", "ogg"),
         encoders=("libspeex",), muxer="ogg", tags=("audio", "16k"),
         notes="Speex in Ogg: older VoIP and voice-note apps."),
    Form("wav_adpcm_ima_22k", ".wav", (*SPEECH, "-ac", "1", "-ar", "22050", "-c:a", "adpcm_ima_wav"),
         encoders=("adpcm_ima_wav",), muxer="wav", tags=("audio", "22k"),
         notes="IMA ADPCM WAV: dictation machines, old voice recorders (4 bits a sample)."),
    Form("mka_dts_51_centre", ".mka", (*SPEECH, "-af", CENTRE_ONLY, "-ar", "48000", "-c:a", "dca",
                                       "-strict", "-2", "-b:a", "768k"),
         channel="centre", encoders=("dca",), muxer="matroska", tags=("audio", "5.1", "48k"),
         notes="DTS 5.1 (ffmpeg's experimental encoder), dialogue in the centre: film rips."),
    Form("awb_amr_wb_16k", ".awb", (*SPEECH, "-ac", "1", "-ar", "16000", "-c:a", "libvo_amrwbenc",
                                    "-b:a", "23.85k", "-f", "amr"),
         encoders=("libvo_amrwbenc",), muxer="amr", tags=("audio", "phone", "16k"),
         notes="AMR-WB (HD voice call recordings). Neither this ffmpeg nor PyAV's has an encoder."),
    Form("ac3_raw_48k_stereo", ".ac3", (*SPEECH, "-ac", "2", "-ar", "48000", "-c:a", "ac3",
                                        "-b:a", "192k", "-f", "ac3"),
         channel="both", encoders=("ac3",), muxer="ac3", tags=("audio", "48k"),
         notes="A raw AC-3 stream (demuxed from a DVD or a broadcast). No header with a length."),
    Form("mp2_raw_48k", ".mp2", (*SPEECH, "-ac", "1", "-ar", "48000", "-c:a", "mp2", "-b:a", "128k",
                                 "-f", "mp2"),
         encoders=("mp2",), muxer="mp2", tags=("audio", "48k"),
         notes="MPEG-1 layer II: broadcast archives, radio logging, old DVB captures."),
    Form("wv_wavpack_44k", ".wv", (*SPEECH, "-ac", "2", "-ar", "44100", "-c:a", "wavpack", "-f", "wv"),
         channel="both", encoders=("wavpack",), muxer="wv", tags=("audio", "lossless", "44k"),
         notes="WavPack (lossless): archives of field and concert recordings."),
    Form("w64_s16_48k", ".w64", (*SPEECH, "-ac", "1", "-ar", "48000", "-c:a", "pcm_s16le", "-f", "w64"),
         encoders=("pcm_s16le",), muxer="w64", tags=("audio", "pcm", "48k"),
         notes="Sony Wave64: what field recorders and DAWs write past WAV's 4 GB."),
    Form("au_mulaw_8k", ".au", (*SPEECH, "-ac", "1", "-ar", "8000", "-c:a", "pcm_mulaw", "-f", "au"),
         encoders=("pcm_mulaw",), muxer="au", tags=("audio", "telephony", "8k"),
         notes="Sun/NeXT .au with mu-law: Unix voicemail and telephony systems."),
    Form("aifc_s16be_22k", ".aifc", (*SPEECH, "-ac", "1", "-ar", "22050", "-c:a", "pcm_s16be",
                                     "-f", "aiff", "-write_id3v2", "1"),
         encoders=("pcm_s16be",), muxer="aiff", tags=("audio", "pcm", "22k"),
         notes="An .aifc name (AIFF-C from macOS tools) with an ID3 chunk."),
    Form("m4b_aac_audiobook_cover", ".m4b", ("-i", "{cover}", *SPEECH, "-map", "0:v", "-map", "1:a",
                                             "-c:v", "png", "-disposition:v:0", "attached_pic",
                                             "-ac", "1", "-ar", "44100", "-c:a", "aac", "-b:a", "64k",
                                             "-movflags", "+faststart", "-f", "ipod"),
         encoders=("png", "aac"), muxer="ipod", tags=("audio", "cover", "44k"),
         notes="An audiobook .m4b with its cover picture (an attached-picture track)."),
    # --- video files: cameras, phones, conference tools, screen recorders ---------------------
    Form("mkv_h264_aac_audio_ends_early", ".mkv", (*_video_in(seconds="{long}"), *SPEECH,
                                                   "-map", "0:v", "-map", "1:a", *X264, "-c:a", "aac"),
         encoders=("libx264", "aac"), muxer="matroska", tags=("video", "ends_early"),
         notes="The reported bug: a video longer than its audio. Matroska gives no per-stream "
               "duration field, only a DURATION tag per track (the track's end time)."),
    Form("mkv_h264_aac_audio_late", ".mkv", (*_video_in(seconds="{long}"), *_late(3.0), *SPEECH,
                                             "-map", "0:v", "-map", "1:a", *X264, "-c:a", "aac"),
         offset=3.0, encoders=("libx264", "aac"), muxer="matroska",
         tags=("video", "late", "ends_early"),
         notes="Audio starting 3 s after the video: its DURATION tag (end time) counts the 3 s."),
    Form("mkv_two_tracks_speech_second_default", ".mkv",
         (*_video_in(), *_silence_in(), *SPEECH, "-map", "0:v", "-map", "1:a", "-map", "2:a", *X264,
          "-c:a", "aac", "-ar", "48000", "-ac", "2", "-disposition:a:0", "0",
          "-disposition:a:1", "default"),
         channel="both", stream=1, encoders=("libx264", "aac"), muxer="matroska",
         tags=("video", "multi_track"),
         notes="Two audio tracks, the first silent, the second (flagged default) the speech."),
    Form("mkv_two_tracks_music_first_language", ".mkv",
         (*_video_in(), *_music_in(), *SPEECH, "-map", "0:v", "-map", "1:a", "-map", "2:a", *X264,
          "-c:a", "libopus", "-ac", "2", "-metadata:s:a:0", "language=ger",
          "-metadata:s:a:1", "language=eng", "-disposition:a:0", "default",
          "-disposition:a:1", "0"),
         channel="both", track=("en",), stream=1, encoders=("libx264", "libopus"),
         muxer="matroska", tags=("video", "multi_track"),
         notes="A German music track flagged default, then English speech: chosen by audio.track=[en]."),
    Form("mkv_subtitles_first_opus", ".mkv",
         ("-i", "{subs}", *_video_in(), *SPEECH, "-map", "0:s", "-map", "1:v", "-map", "2:a",
          "-c:s", "srt", *X264, "-c:a", "libopus", "-b:a", "48k"),
         encoders=("srt", "libx264", "libopus"), muxer="matroska", tags=("video", "subtitle_first"),
         notes="A subtitle stream before the video and the audio (stream 2 is audio 0)."),
    Form("mkv_cover_first_flac_96k", ".mkv",
         ("-i", "{cover}", *_video_in(), *SPEECH, "-map", "0:v", "-map", "1:v", "-map", "2:a",
          "-c:v:0", "mjpeg", "-disposition:v:0", "attached_pic", "-c:v:1", "libx264",
          "-preset", "ultrafast", "-pix_fmt:v:1", "yuv420p", "-ac", "2", "-ar", "96000",
          "-c:a", "flac"),
         channel="both", encoders=("mjpeg", "libx264", "flac"), muxer="matroska",
         tags=("video", "cover", "lossless", "96k"),
         notes="A cover-art picture track first, then video, then 96 kHz FLAC."),
    Form("mp4_h264_aac_audio_late", ".mp4", (*_video_in(seconds="{long}"), *_late(2.5), *SPEECH,
                                             "-map", "0:v", "-map", "1:a", *X264, "-c:a", "aac"),
         offset=2.5, encoders=("libx264", "aac"), muxer="mp4", tags=("video", "late", "ends_early"),
         notes="Audio 2.5 s after the video: an empty edit in the audio track's edit list."),
    Form("mp4_subtitles_first_aac_32k", ".mp4",
         ("-i", "{subs}", *_video_in(), *SPEECH, "-map", "0:s", "-map", "1:v", "-map", "2:a",
          "-c:s", "mov_text", *X264, "-c:a", "aac", "-ar", "32000", "-ac", "1"),
         encoders=("mov_text", "libx264", "aac"), muxer="mp4",
         tags=("video", "subtitle_first", "conference", "32k"),
         notes="Conference-tool recording (Zoom writes AAC mono at 32 kHz), a timed-text track first."),
    Form("mp4_aac_padded_adelay", ".mp4", (*_video_in(seconds="{long}"), *SPEECH, "-map", "0:v",
                                           "-map", "1:a", "-af", "adelay=2000:all=1", *X264,
                                           "-c:a", "aac", "-ar", "44100"),
         lead=2.0, encoders=("libx264", "aac"), muxer="mp4", tags=("video", "lead_in", "44k"),
         notes="2 s of silence inside the audio stream: offset 0, speech heard at 2 s."),
    Form("m4v_h264_aac_audio_ends_early", ".m4v", (*_video_in(seconds="{long}"), *SPEECH,
                                                   "-map", "0:v", "-map", "1:a", *X264, "-c:a", "aac",
                                                   "-ar", "48000", "-f", "ipod"),
         encoders=("libx264", "aac"), muxer="ipod", tags=("video", "ends_early", "48k"),
         notes="iTunes-style m4v; audio ends 4 s before the video."),
    Form("mov_pcm_s24_left_only_timecode", ".mov",
         (*_video_in(), *SPEECH, "-map", "0:v", "-map", "1:a", "-af", LEFT_ONLY, "-c:v", "mpeg4",
          "-c:a", "pcm_s24le", "-ar", "48000", "-timecode", "01:00:00:00"),
         channel="left", encoders=("mpeg4", "pcm_s24le"), muxer="mov",
         tags=("video", "camera", "data", "48k"),
         notes="Camera .mov: 24-bit PCM, a lavalier on the left channel only, a timecode (tmcd) "
               "data track."),
    Form("3gp_h263_aac_phone", ".3gp", (*_video_in(size="128x96"), *SPEECH, "-map", "0:v",
                                        "-map", "1:a", "-c:v", "h263", "-c:a", "aac", "-ar", "22050",
                                        "-ac", "1"),
         encoders=("h263", "aac"), muxer="3gp", tags=("video", "phone", "22k"),
         notes="Feature-phone video: H.263 at 128x96 (a size H.263 allows) with AAC."),
    Form("ts_dvr_two_audio_pts_base", ".ts",
         (*_video_in(rate=25), *SPEECH, *_music_in(), "-map", "0:v", "-map", "1:a", "-map", "2:a",
          "-c:v", "mpeg2video", "-c:a:0", "ac3", "-c:a:1", "mp2", "-ar", "48000", "-ac", "2",
          "-metadata:s:a:0", "language=eng", "-metadata:s:a:1", "language=spa",
          "-output_ts_offset", "600"),
         channel="both", encoders=("mpeg2video", "ac3", "mp2"), muxer="mpegts",
         tags=("video", "dvr", "multi_track", "48k"),
         notes="DVR recording of a broadcast: timestamps starting near 600 s (joined mid-stream), "
               "AC-3 English then MP2 Spanish. The player's clock starts at the first timestamp."),
    Form("ts_mp2_audio_late", ".ts", (*_video_in(rate=25, seconds="{long}"), *_late(3.0), *SPEECH,
                                      "-map", "0:v", "-map", "1:a", "-c:v", "mpeg2video",
                                      "-c:a", "mp2", "-ar", "48000"),
         offset=3.0, encoders=("mpeg2video", "mp2"), muxer="mpegts", tags=("video", "dvr", "late"),
         notes="Audio 3 s after the video in a transport stream (1.4 s muxer base on both)."),
    Form("ts_data_stream_first", ".ts", ("-f", "data", "-i", "{blob}", *_video_in(rate=25), *SPEECH,
                                         "-map", "0:d", "-map", "1:v", "-map", "2:a", "-c:d", "copy",
                                         "-c:v", "mpeg2video", "-c:a", "mp2", "-ar", "44100"),
         encoders=("mpeg2video", "mp2"), muxer="mpegts", tags=("video", "data"),
         notes="A private data stream (stream 0) before video and audio."),
    Form("m2ts_avchd_h264_ac3", ".m2ts", (*_video_in(rate=25), *SPEECH, "-map", "0:v", "-map", "1:a",
                                          *X264, "-c:a", "ac3", "-ar", "48000", "-ac", "2",
                                          "-f", "mpegts", "-mpegts_m2ts_mode", "1"),
         channel="both", encoders=("libx264", "ac3"), muxer="mpegts",
         tags=("video", "camcorder", "48k"),
         notes="AVCHD camcorder clip: 192-byte-packet transport stream, H.264 + AC-3."),
    Form("mts_avchd_ac3_51_centre", ".mts", (*_video_in(rate=25), *SPEECH, "-map", "0:v",
                                             "-map", "1:a", "-af", CENTRE_ONLY, *X264, "-c:a", "ac3",
                                             "-b:a", "384k", "-ar", "48000", "-f", "mpegts",
                                             "-mpegts_m2ts_mode", "1"),
         channel="centre", encoders=("libx264", "ac3"), muxer="mpegts",
         tags=("video", "camcorder", "5.1", "48k"),
         notes="AVCHD .MTS with 5.1 AC-3, the voice in the centre channel only."),
    Form("m2ts_bluray_lpcm", ".m2ts", (*_video_in(rate=25), *SPEECH, "-map", "0:v", "-map", "1:a",
                                       *X264, "-c:a", "pcm_bluray", "-ar", "48000", "-ac", "2",
                                       "-f", "mpegts", "-mpegts_m2ts_mode", "1"),
         channel="both", encoders=("libx264", "pcm_bluray"), muxer="mpegts",
         tags=("video", "camcorder", "pcm", "48k"),
         notes="Blu-ray LPCM (big-endian, its own header) in M2TS: pro camcorders, disc rips."),
    Form("m2t_hdv_mpeg2_mp2", ".m2t", (*_video_in(rate=25), *SPEECH, "-map", "0:v", "-map", "1:a",
                                       "-c:v", "mpeg2video", "-c:a", "mp2", "-ar", "48000", "-ac", "2",
                                       "-b:a", "384k", "-f", "mpegts"),
         channel="both", encoders=("mpeg2video", "mp2"), muxer="mpegts",
         tags=("video", "camcorder", "48k"),
         notes="HDV tape capture (.m2t): MPEG-2 video and MPEG-1 layer II audio in a transport stream."),
    Form("mod_jvc_mpeg2_ac3", ".mod", (*_video_in(rate=25), *SPEECH, "-map", "0:v", "-map", "1:a",
                                       "-c:v", "mpeg2video", "-c:a", "ac3", "-ar", "48000", "-ac", "2",
                                       "-f", "vob"),
         channel="both", encoders=("mpeg2video", "ac3"), muxer="vob",
         tags=("video", "camcorder", "48k"),
         notes="JVC/Panasonic SD camcorder .MOD: an MPEG-2 program stream with AC-3."),
    Form("vob_dvd_mpeg2_ac3", ".vob", (*_video_in(rate=25), *SPEECH, "-map", "0:v", "-map", "1:a",
                                       "-c:v", "mpeg2video", "-c:a", "ac3", "-ar", "48000",
                                       "-ac", "2", "-f", "vob"),
         channel="both", encoders=("mpeg2video", "ac3"), muxer="vob",
         tags=("video", "dvd", "48k"),
         notes="DVD-Video VOB: MPEG-2 program stream, AC-3 in a private stream."),
    Form("vob_dvd_lpcm", ".vob", (*_video_in(rate=25), *SPEECH, "-map", "0:v", "-map", "1:a",
                                  "-c:v", "mpeg2video", "-c:a", "pcm_dvd", "-ar", "48000",
                                  "-ac", "2", "-f", "dvd"),
         channel="both", encoders=("mpeg2video", "pcm_dvd"), muxer="dvd",
         tags=("video", "dvd", "pcm", "48k"),
         notes="DVD recorder VOB with LPCM audio (pcm_dvd)."),
    Form("mpg_mpeg1_mp2_44k", ".mpg", (*_video_in(rate=25), *SPEECH, "-map", "0:v", "-map", "1:a",
                                       "-c:v", "mpeg1video", "-c:a", "mp2", "-ar", "44100",
                                       "-f", "mpeg"),
         encoders=("mpeg1video", "mp2"), muxer="mpeg", tags=("video", "44k"),
         notes="MPEG-1 program stream (VCD-era archives, old camcorders)."),
    Form("mxf_xdcam_two_mono_tracks", ".mxf", (*_video_in(rate=25), *SPEECH, *_silence_in(),
                                               "-map", "0:v", "-map", "1:a", "-map", "2:a",
                                               "-c:v", "mpeg2video", "-c:a", "pcm_s24le",
                                               "-ar", "48000", "-ac", "1", "-f", "mxf"),
         encoders=("mpeg2video", "pcm_s24le"), muxer="mxf", tags=("video", "camcorder", "multi_track", "48k"),
         notes="Professional camcorder MXF (XDCAM/P2 style): one mono PCM track per input, the "
               "camera mic on the first, the second silent."),
    Form("dv_minidv_pcm_48k", ".dv", (*_video_in(rate=25, size="720x576"), *SPEECH, "-map", "0:v",
                                      "-map", "1:a", "-c:v", "dvvideo", "-pix_fmt", "yuv420p",
                                      "-c:a", "pcm_s16le", "-ar", "48000", "-ac", "2", "-f", "dv"),
         channel="both", encoders=("dvvideo", "pcm_s16le"), muxer="dv",
         tags=("video", "camcorder", "pcm", "48k"),
         notes="MiniDV tape capture: DV25 PAL (720x576 is the only size; 3.6 MB a second) with "
               "locked 48 kHz PCM."),
    Form("webm_vp8_opus_late_ends_early", ".webm", (*_video_in(seconds="{long}"), *_late(2.0),
                                                    *SPEECH, "-map", "0:v", "-map", "1:a",
                                                    "-c:v", "libvpx", "-deadline", "realtime",
                                                    "-cpu-used", "8", "-c:a", "libopus"),
         offset=2.0, encoders=("libvpx", "libopus"), muxer="webm", tags=("video", "late", "ends_early"),
         notes="WebM screen recording: audio from 2 s, the video longer."),
    Form("ogv_theora_vorbis_late", ".ogv", (*_video_in(seconds="{long}"), *_late(2.0), *SPEECH,
                                            "-map", "0:v", "-map", "1:a", "-c:v", "libtheora",
                                            "-c:a", "libvorbis", "-ar", "44100", "-f", "ogg"),
         offset=2.0, encoders=("libtheora", "libvorbis"), muxer="ogg",
         tags=("video", "late", "ends_early", "44k"),
         notes="Ogg Theora video with Vorbis audio starting 2 s in."),
    Form("avi_mjpeg_u8_11k_ends_early", ".avi", (*_video_in(seconds="{long}"), *SPEECH, "-map", "0:v",
                                                 "-map", "1:a", "-c:v", "mjpeg", "-c:a", "pcm_u8",
                                                 "-ar", "11025"),
         encoders=("mjpeg", "pcm_u8"), muxer="avi", tags=("video", "camera", "ends_early", "11k"),
         notes="Old digital camera clip: MJPEG with 8-bit 11 kHz PCM. AVI gives PCM no stream "
               "duration, so only the container's (the video's) is there."),
    Form("avi_xvid_mp3_ends_early", ".avi", (*_video_in(seconds="{long}"), *SPEECH, "-map", "0:v",
                                             "-map", "1:a", "-c:v", "mpeg4", "-vtag", "XVID",
                                             "-c:a", "libmp3lame", "-ar", "44100", "-ac", "2"),
         channel="both", encoders=("mpeg4", "libmp3lame"), muxer="avi",
         tags=("video", "ends_early", "44k"),
         notes="XviD + MP3 AVI (file-sharing era libraries); audio ends first."),
    Form("flv_h264_aac_late", ".flv", (*_video_in(seconds="{long}"), *_late(1.5), *SPEECH,
                                       "-map", "0:v", "-map", "1:a", *X264, "-c:a", "aac",
                                       "-ar", "44100"),
         offset=1.5, encoders=("libx264", "aac"), muxer="flv", tags=("video", "late", "ends_early", "44k"),
         notes="RTMP/OBS stream dump: FLV with H.264 and AAC from 1.5 s."),
    Form("flv_sorenson_mp3_22k", ".flv", (*_video_in(), *SPEECH, "-map", "0:v", "-map", "1:a",
                                          "-c:v", "flv", "-c:a", "libmp3lame", "-ar", "22050"),
         encoders=("flv", "libmp3lame"), muxer="flv", tags=("video", "22k"),
         notes="Old Flash video: Sorenson Spark and 22.05 kHz MP3."),
    Form("f4v_h264_aac", ".f4v", (*_video_in(), *SPEECH, "-map", "0:v", "-map", "1:a", *X264,
                                  "-c:a", "aac", "-ar", "44100", "-f", "f4v"),
         encoders=("libx264", "aac"), muxer="f4v", tags=("video", "44k"),
         notes="Flash-era .f4v (an MP4 variant): web video archives."),
    Form("3g2_h263_aac_phone", ".3g2", (*_video_in(size="176x144"), *SPEECH, "-map", "0:v",
                                        "-map", "1:a", "-c:v", "h263", "-c:a", "aac", "-ar", "16000",
                                        "-ac", "1", "-f", "3g2"),
         encoders=("h263", "aac"), muxer="3g2", tags=("video", "phone", "16k"),
         notes="CDMA phone video (.3g2): H.263 QCIF with 16 kHz AAC."),
    Form("wmv_wmv2_wmav2_ends_early", ".wmv", (*_video_in(seconds="{long}"), *SPEECH, "-map", "0:v",
                                               "-map", "1:a", "-c:v", "wmv2", "-c:a", "wmav2",
                                               "-ar", "44100", "-f", "asf"),
         encoders=("wmv2", "wmav2"), muxer="asf", tags=("video", "ends_early", "44k"),
         notes="Windows Media Video; ASF gives every stream the file's play duration."),
    Form("asf_wmv1_wmav2_late", ".asf", (*_video_in(seconds="{long}"), *_late(2.0), *SPEECH,
                                         "-map", "0:v", "-map", "1:a", "-c:v", "wmv1", "-c:a", "wmav2",
                                         "-ar", "22050", "-f", "asf"),
         offset=2.0, encoders=("wmv1", "wmav2"), muxer="asf", tags=("video", "late", "22k"),
         notes="ASF (Windows Media Encoder captures) with the audio from 2 s."),
)

BY_NAME = {form.name: form for form in FORMS}
#: A form's decoded audio may be this much shorter or longer than its speech (plus its lead):
#: codec priming and padding (AAC, Opus, CAF's 4096-sample packets, ADTS's estimate), WMA's delay.
LENGTH_SHORT_BY, LENGTH_LONG_BY = 0.05, 0.15
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


def build_matrix(source: StrPath, folder: StrPath, forms: Iterable[Form] = FORMS) -> Matrix:
    """Every form this machine can make, from `source` (a corpus clip) turned into the speech
    WAV, into `folder`."""
    folder = Path(folder)
    speech = speech_wav(source, folder / "_speech" / "speech.wav")
    built, unbuilt = build_all(speech, folder / "forms", forms)
    return Matrix(speech, speech_seconds(speech), built, unbuilt)


def sidecar_text(form: Form) -> str | None:
    """The sidecar (`<file>.yaml`) that gives the form's job its `audio_track`, None for auto."""
    if form.track == "auto":
        return None
    if isinstance(form.track, tuple):
        return f"audio_track: [{', '.join(form.track)}]\n"
    return f"audio_track: {form.track}\n"


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
              forms: Iterable[Form] = FORMS) -> tuple[dict[str, Path], dict[str, str]]:
    """Build every form it can: {name: path} of those built, {name: why} of those not."""
    built, failed = {}, {}
    for form in forms:
        try:
            built[form.name] = build(form, speech, folder)
        except FormUnbuildable as exc:
            failed[form.name] = exc.reason
    return built, failed


def unbuildable(speech: StrPath, forms: Iterable[Form] = FORMS,
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
