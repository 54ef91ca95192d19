"""Sans-I/O protocol cores: bytes in, typed events out; decisions in, bytes out.

Invariant: nothing in this package imports asyncio, socket, ssl or any other todoku layer.
"""
