"""Libraries: a second job source. Subtitles are written beside media that never moves
(docs/libraries.md).

source.py  LibrarySource: scans the libraries, claims a media file in place, finishes beside it
scan.py    what a library holds: media files, the subtitles beside them, the folders it skips
job.py     a library job's record (the media's path, its options) and the library routes
markers.py claim markers: several daemons on one library do each file once
ledger.py  what was done or failed, content-addressed, so a rescan repeats nothing
"""
