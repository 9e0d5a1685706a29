"""Transcription: one job's stages, from the source file to the staged results.

pipeline.py     the stages: options, decode, voice activity, language, Whisper (OOM back-off),
                filters, write, align, diarize
untrusted.py    opening what a writer left: regular files only, no links, never blocking
audio.py        PyAV decoding, the bad-input checks (empty, truncated, too long), the memory bound
tracks.py       which audio stream a job transcribes (audio.track), and why
declared.py     an audio stream's own declared length, and its start on the media's clock
options.py      routes and sidecars over the config: one job's options (model, words, layout)
whisper.py      a job's model made resident, its batch size backing off on OOM, the CPU fallback
filters.py      post-filters against hallucinated text (loops, no-speech, outside speech)
alignment.py    word timestamps (whisperx forced alignment, resident models)
diarization.py  speaker labels (pyannote through whisperx), loaded at start or for the first file asking
translation.py  the language of the text, and the English translation beside a transcript
outputs.py      whisperx's writers into the job's staging folder
metadata.py     the `transcribed` block of a job's JSON: what ran, how, how long
"""
