"""`python -m transcribed` is the `transcribed` command."""

import sys

from .cli import main

sys.exit(main())
