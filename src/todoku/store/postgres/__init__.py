"""The PostgreSQL backend (issue 19): several todoku nodes on one database.

Every node is stateless apart from its caches; PostgreSQL holds users, aliases, message content,
mailboxes and the outbound queue, and its own replication carries availability. Only ``app.py``
imports this package (psycopg is the optional extra ``postgresql``).

- ``schema``: the numbered migrations, applied under an advisory lock by one node at a time.
- ``backend``: ``PostgresBackend``, the ``Storage`` (Directory, Queue, Blobs, Intake) over one
  psycopg async connection pool.
"""
