"""One way to hash a file's content (sha256, read in 1 MB blocks): model manifests, raw-data
lineage and the study's step fingerprints all use it."""

from __future__ import annotations

import hashlib
from pathlib import Path


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
