"""The spool: the folder state machine every job goes through, whichever source it came from.

seam.py         the JobSource and Spool protocols: what the consumer holds
jobs.py         Job, JobState, the record a job keeps (attempts, history, its source)
claim.py        the claim: one atomic rename out of the inbox into this worker's folder
sidecars.py     the per-file options that travel with a source
workers.py      who holds a claim: identity, liveness, the lease
adoption.py     the jobs of a worker that is gone, taken into ours
finish.py       finish plans: no-clobber moves out of the work folder, held jobs, result names
folder.py       WorkFolder: this worker's folder, its set-up, lease, attempts and adoption
pause.py        the pause file in the state folder: every daemon on it starts no new job
storage.py      Storage: a full, over-quota or read-only filesystem waited out (the floor, the probe)
fake_source.py  FakeSource: a job source for fast tests of the consumer loop
"""
