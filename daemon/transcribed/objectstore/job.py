"""An object-store job: a job folder like any other (`job.json`), staging a copy of the object.

The object stays in the bucket; its copy is downloaded into the job folder (`src/<name>`), the
pipeline runs on it as on an inbox file, and its results are staged in `out/` before they are
uploaded under the attempt's prefix (commit.py). `objectstore.json` names the object. The job's
local id is the attempt: unique per claim, so two deliveries of one object never share a prefix.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .identity import ObjectRef

#: The reference to the object in an object-store job's folder.
OBJECT_RECORD = "objectstore.json"


@dataclass
class ObjectJob:
    """What the source keeps of one of its jobs beside the consumer's `Job`."""

    ref: ObjectRef
    #: The delivery number the queue gave this claim (1: first; more: the job came back).
    delivery: int = 1

    def reference(self) -> dict[str, Any]:
        return {**self.ref.describe(), "delivery": self.delivery}
