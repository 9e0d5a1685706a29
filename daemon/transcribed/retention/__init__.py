"""Retention: what the daemon keeps of its own finished items, and for how long (off by default).

items.py   the items of done/, the outbox, failed/ and the state folder: one job's files each,
           their record, age and size; and what is still in use (finish plans, pending hooks)
select.py  which items go: older than the folder's age, or the oldest past its size (pure)
carry.py   removing or archiving them under a journal a crash cannot leave half-done
keeper.py  the passes: the daemon's thread, `transcribed retention [--dry-run]`, one at a time
"""

from .keeper import Keeper

__all__ = ["Keeper"]
