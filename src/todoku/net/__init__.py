"""Thin asyncio adapters: the only place where bytes meet sockets. They move bytes between the
network and the sans-I/O cores, apply timeouts, and ask policy and storage for decisions."""
