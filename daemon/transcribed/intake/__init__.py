"""Intake: noticing files in the inbox, deciding when each is complete, and the inbox as a job source.

watcher.py   the watchdog observer: events wake the consumer (inotify, or polling on shares)
arrivals.py  when a file is complete (closed, or settled), and the order files are taken in
inbox.py     the inbox read: which entries are jobs, sidecars left without their audio
backlog.py   the waiting files' audio durations, from their headers
source.py    InboxSource: complete files claimed oldest first; each job's end in the folders
"""
