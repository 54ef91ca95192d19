"""The web side: client autoconfiguration, the MTA-STS policy and Prometheus metrics, served
over https (the mail services' certificate) by aiohttp inside todoku's own event loop.

Job: answer mail programs and monitoring from what the server already knows (configuration,
bound listeners, storage, counters). Invariants: no global state (``build_web`` gets the
configuration, store and ``Metrics`` it serves); every request is bounded (web/server.py,
web/routes.py); XML is built with xml.etree, never by pasting text; nothing here imports app.py
or the command line, and only app.py starts it.
"""
