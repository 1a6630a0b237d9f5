"""A resumable store of finished per-image results, so a re-run recomputes nothing it has.

One JSON object per line, appended (and flushed) as each result finishes: an interrupted run
loses at most the line being written, which is skipped on load.  A result is keyed by codec,
codec settings, quality, image file name and the SHA-256 of the image file, so a changed
image or encoder option is recomputed rather than reused.
"""

from __future__ import annotations

import json
from pathlib import Path

from .errors import EvaluationError


def cache_key(codec: str, settings: str, quality: int, image: str, digest: str) -> str:
    return json.dumps([codec, settings, quality, image, digest])


class ResultCache:
    """Results by key, loaded from and appended to a JSON-lines file (or in memory only)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.entries: dict[str, dict] = {}
        if path is None or not path.exists():
            return
        try:
            lines = path.read_text().splitlines()
        except (OSError, UnicodeDecodeError) as e:
            raise EvaluationError(f"cannot read cache {path}: {e}") from None
        for line in lines:
            try:
                entry = json.loads(line)
                self.entries[entry["key"]] = entry["result"]
            except (ValueError, KeyError, TypeError):
                continue  # a line cut short by an interrupted run

    def get(self, key: str) -> dict | None:
        return self.entries.get(key)

    def put(self, key: str, result: dict) -> None:
        self.entries[key] = result
        if self.path is None:
            return
        try:
            with self.path.open("a") as f:
                f.write(json.dumps({"key": key, "result": result}, allow_nan=False) + "\n")
        except OSError as e:
            raise EvaluationError(f"cannot write cache {self.path}: {e}") from None
