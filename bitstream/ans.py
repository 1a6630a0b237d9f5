"""Entropy coding of integer symbols with ``constriction``'s range coder.

Every distribution is an integer frequency table (a row of a 2-D array, rows
summing to a power of two).  Symbols that share a table are coded together, in
order of table index and then of position, so both sides need only the table
index of each symbol to agree on the order.
"""

from __future__ import annotations

import constriction
import numpy as np

from .container import BitstreamError


class TableSet:
    """A stack of frequency tables turned into ``constriction`` models once."""

    def __init__(self, freqs: np.ndarray) -> None:
        freqs = np.asarray(freqs, dtype=np.float64)
        probs = freqs / freqs.sum(axis=1, keepdims=True)
        self._models = [constriction.stream.model.Categorical(p, perfect=False) for p in probs]

    def encode(self, symbols: np.ndarray, table: np.ndarray | int) -> bytes:
        """Code ``symbols`` (each below the table width), each with its table index."""
        symbols = np.ascontiguousarray(symbols, dtype=np.int32).ravel()
        enc = constriction.stream.queue.RangeEncoder()
        for idx, group in _groups(table, symbols.size):
            enc.encode(symbols[group], self._models[idx])
        return enc.get_compressed().astype("<u4").tobytes()  # little-endian, as the container

    def decode(self, data: bytes, table: np.ndarray | int, count: int) -> np.ndarray:
        """Inverse of :meth:`encode` for ``count`` symbols."""
        if len(data) % 4:
            raise BitstreamError("corrupted entropy-coded section (length)")
        words = np.frombuffer(data, dtype="<u4").astype(np.uint32)  # little-endian words
        dec = constriction.stream.queue.RangeDecoder(words)
        out = np.empty(count, dtype=np.int32)
        try:
            for idx, group in _groups(table, count):
                out[group] = dec.decode(self._models[idx], int(group.size))
        except (AssertionError, ValueError, RuntimeError):
            raise BitstreamError("corrupted entropy-coded section") from None
        return out


def _groups(table: np.ndarray | int, count: int):
    """(table index, positions) pairs in increasing table order."""
    if np.isscalar(table):
        yield int(table), np.arange(count)
        return
    table = np.asarray(table).ravel()
    order = np.argsort(table, kind="stable")
    bounds = np.flatnonzero(np.diff(table[order])) + 1
    for group in np.split(order, bounds):
        if group.size:
            yield int(table[group[0]]), group
