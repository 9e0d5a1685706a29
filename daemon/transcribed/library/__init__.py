"""Libraries: a second way in. Subtitles are written beside media that never moves
(docs/libraries.md).

spool.py   LibrarySpool: scans the libraries, claims a media file in place, finishes beside it
scan.py    what a library holds: media files, the subtitles beside them, the folders it skips
job.py     a library job's record (the media's path, its options) and the library routes
markers.py claim markers: several daemons on one library do each file once
ledger.py  what was done or failed, content-addressed, so a rescan repeats nothing
place.py   putting a result beside the media without overwriting, on any filesystem
"""
