"""Operations: everything the daemon tells the world, all from the one `Stats`.

stats.py        the one set of numbers: counters and the current state, /healthz's verdict
progress.py     a running job's percent and ETA
status_line.py  the one line: systemd's STATUS= and `transcribed status`'s summary
status_file.py  the per-daemon status file, and `transcribed status` reading them all
pause_command.py  `transcribed pause` and `resume`: the pause file, and what each daemon said
metrics.py      Prometheus' metrics, collected from Stats at each scrape
listener.py     the HTTP listener: /metrics, /healthz and the status page at /
status_page.py  the status page: a person's view of one snapshot, in plain HTML and CSS
notify.py       sd_notify: READY, STATUS, WATCHDOG, STOPPING
reporter.py     what drives them: the consumer's heartbeat, GPU memory samples
memory.py       the process's RSS, and handing freed heap back
"""
