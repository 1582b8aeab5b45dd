"""One module per group of figures; each measures deskgate against its peer in the same run.

- :mod:`.throughput` — flat-out throughput (recording on vs websockify, on vs off), CPU per GB.
- :mod:`.latency` — added key→echo round trip vs websockify and direct TCP.
- :mod:`.recording` — journal size vs the wire and websockify ``--record``; render speed, MP4 size.
- :mod:`.density` — office sessions per core, memory per session vs websockify's per connection.
- :mod:`.login` — login latency and rate with local users.
"""
