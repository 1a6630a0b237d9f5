"""Decoder-side enhancement networks (artefact removal, restoration).

Nothing here yet: the post-filter and restoration issues fill this package.
"""
