"""Container format and entropy coding of lcodec files.

:mod:`bitstream.container` packs a header and CRC-checked sections into bytes and
parses them back strictly; :mod:`bitstream.ans` codes integer symbols with
``constriction``'s range coder from integer frequency tables.
"""

from .container import BitstreamError, Header, pack, unpack

__all__ = ["BitstreamError", "Header", "pack", "unpack"]
