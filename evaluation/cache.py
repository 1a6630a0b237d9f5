"""A resumable store of finished per-image results, so a re-run recomputes nothing it has.

One JSON object per line, appended (and flushed) as each result finishes: an interrupted run
loses at most the line being written, which is skipped on load.  A result is keyed by codec,
codec settings, quality, image file name and the SHA-256 of the image file, so a changed
image or encoder option is recomputed rather than reused.

The cache is not committed, but the results file a suite writes holds the same results with
everything their keys are made of: :func:`report_results` reads them back, so that a fresh
checkout re-runs a committed suite coding only what changed (:meth:`ResultCache.adopt`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
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

    def adopt(self, results: Iterable[tuple[str, dict]]) -> None:
        """Take the ``(key, result)`` pairs it does not hold yet, in memory only (the results
        file they come from keeps them until the run rewrites it with them)."""
        for key, result in results:
            self.entries.setdefault(key, result)

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


def report_results(
    path: Path, fmt: str, sources: str, source: str, identity: Callable[[dict], str]
) -> list[tuple[str, dict]]:
    """The ``(key, result)`` pairs of the records in the results file ``path``, written by a
    suite whose ``format`` is ``fmt``; none where the file is missing, unreadable or of
    another format.  ``sources`` names the file's list of sources (images, sequences),
    ``source`` the records' field naming one, and ``identity`` makes a source's digest (as
    :func:`cache_key` takes it) from its entry in that list."""
    try:
        report = json.loads(Path(path).read_text())
        if report.get("format") != fmt:
            return []
        digests = {s["name"]: identity(s) for s in report[sources]}
        settings = {name: c["settings"] for name, c in report["codecs"].items()}
        pairs = []
        for r in report["records"]:
            codec, name = r["codec"], r[source]
            if settings.get(codec) is None or name not in digests:
                continue
            result = {k: v for k, v in r.items() if k not in ("codec", "quality", source)}
            pairs.append(
                (cache_key(codec, settings[codec], r["quality"], name, digests[name]), result)
            )
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return []
    return pairs
