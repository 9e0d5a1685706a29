"""`python -m transcribed.doctor`: the doctor's child process for the sample transcription."""

import sys

from .sample import child_main

sys.exit(child_main())
