"""Completion hooks: a command run, a webhook called and notifications sent when a job ends
(docs/hooks.md, docs/notifications.md).

queue.py          Hooks: durable pending records, the delivery thread, retries, the ledger
takeover.py       pending records of gone workers taken over; the delivered ledger pruned
notes.py          what a delivery says: which outcomes fire, the job's note, where its files went
calls.py          one try: the command (stdin JSON, TRANSCRIBED_* variables) or the signed POST
notifications.py  one try of a notification: an Apprise URL from `hooks.notify.urls_file`
message.py        what a notification says: its title and body from the templates, the first words
tally.py          what is pending and failing, told to Stats after each pass
pending.py        what waits in the hook folders, for `transcribed status` (read-only)
"""

from .notes import wanted
from .queue import Hooks

__all__ = ["Hooks", "wanted"]
