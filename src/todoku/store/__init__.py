"""Storage: message blobs, mailboxes, the outbound queue, users and aliases.

``api`` is the narrow interface that protocol adapters and the queue use; ``sqlite`` (with
``blobs``) is the embedded default. Only ``app`` and the CLI pick a backend.
"""
