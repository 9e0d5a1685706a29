"""The stages after the plain transcript: word timestamps (alignment), then speaker labels.

Each is asked for per job (`align`, `diarize`: daemon-wide, per route, library or sidecar) and
notes what it did in the job's run state; the pipeline guards them (a failure keeps the plain
transcript) and writes the outputs again after them.
"""

from __future__ import annotations

from ..engine.base import Transcript
from ..errors import TranscribedError
from .alignment import Aligner, AlignModelMissing
from .audio import Audio
from .diarization import Diarizer, assign_speakers
from .metadata import Run
from .options import Effective


def align_words(aligner: Aligner | None, result: Transcript, audio: Audio, options: Effective,
                state: Run) -> Transcript:
    """Word timestamps by forced alignment. A missing aligner is a note, unless this job asked
    for alignment outright (`align: true`): then it fails the stage."""
    if aligner is None:
        if options.align is True:
            raise AlignModelMissing("this engine has no alignment")
        return result
    try:
        aligned = aligner.align(result, audio.samples)
    except AlignModelMissing as exc:
        if options.align is True:
            raise
        state.notes["alignment"] = f"unavailable: {exc}"
        return result
    state.notes["alignment"] = "words"
    return aligned


def label_speakers(diarizer: Diarizer | None, result: Transcript, audio: Audio, options: Effective,
                   state: Run) -> Transcript:
    """Speaker labels on segments and words; the pipeline is loaded on demand where a route or
    sidecar asked for speakers and `diarize.enabled` did not."""
    if diarizer is not None:
        diarizer.load_on_demand()
    if diarizer is None or diarizer.pipeline is None:
        reason = diarizer.unavailable if diarizer else "this engine has no diarization"
        raise TranscribedError(f"no diarization pipeline ({reason})")
    turns = diarizer.turns(audio.samples, options.min_speakers, options.max_speakers)
    state.speaker_turns = turns
    labelled = assign_speakers(turns, result.copy())  # a new result: the outputs are written again
    state.notes["speakers"] = len({s.get("speaker") for s in labelled["segments"]} - {None})
    return labelled
