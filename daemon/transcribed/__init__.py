"""transcribed: a watch-folder transcription daemon."""
__version__ = "0.1.0"
