"""Completion hooks: a command run and a webhook called when a job ends (docs/hooks.md).

queue.py  Hooks: durable pending records, the delivery thread, retries, the ledger, take-overs
notes.py  what a delivery says: which outcomes fire, the job's note, where its files went
calls.py  one try: the command (stdin JSON, TRANSCRIBED_* variables) or the signed POST
pending.py  what waits in the hook folders, for `transcribed status` (read-only)
"""

from .notes import wanted
from .queue import Hooks

__all__ = ["Hooks", "wanted"]
