"""The consumer: the one thread that takes jobs from their sources and carries each to its end.

loop.py       Consumer: next job, one job's steps, shared calls, decoding ahead, the heartbeat
outcome.py    what happens to a job, decided from what happened: one pure function
endings.py    carrying that out: done, failed, retried, waiting, given back; sent to the job's source
prefetch.py   overlap: the next files decoded and their speech found meanwhile
sharing.py    which short files share Whisper (batching, packing), and the shared calls
residency.py  giving the GPU back when idle, and loading the models again
gate.py       whether a job may start: `transcribed pause` (the pause file) and quiet hours
model_order.py  with several models, waiting files that use a loaded one first (bounded wait)
storage_watch.py  the storage monitor as the loop asks it, told to the reports
"""
