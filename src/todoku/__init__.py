"""todoku (届く, "it arrives"): a self-hosted mail server that never loses mail and explains failures."""

__version__ = "0.1.0"
