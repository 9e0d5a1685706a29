"""The object store as a second intake: media and results in S3-compatible storage, jobs from a
work queue every daemon shares (NATS JetStream, or SQS on AWS), each outcome committed exactly
once by a conditional write of its manifest (docs/scale.md). Optional: boto3 and nats-py are
imported only when `objectstore.enabled` is true.

identity.py     which object a job is (bucket, key, ETag), the messages that name one
store.py        the bucket through boto3: listing, download, upload, the conditional write, the probe
commit.py       the commit: results under the attempt's prefix, then the manifest (If-None-Match: *)
queue.py        the work queue's seam: deliveries, leases, dead letters
jetstream.py    NATS JetStream: a work-queue stream, one durable pull consumer, dead-letter advisories
sqs.py          SQS: visibility timeout as the lease, the redrive policy's queue as dead letters
job.py          what an object-store job keeps in its folder
source.py       the JobSource: claims from the queue, objects staged, ends committed
background.py   lease renewals while the consumer beats, dead letters, the reconciler
start.py        at start: the store reached and probed, the queue chosen, the source opened
"""
