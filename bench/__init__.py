"""deskgate's benchmarks, each figure measured against a peer in the same run (``make bench``).

Modules, one concern each:

- :mod:`bench.capture_file` — the captured RFB workload: a file of timestamped server messages.
- :mod:`bench.workload` — records that workload from a scripted office session on Xvnc.
- :mod:`bench.replay` — a VNC server that replays a capture, at recorded pace or flat out, and
  echoes key events for the latency figures.
- :mod:`bench.client` — the browser's role: one RFB client over WebSocket (gateway or
  websockify) or plain TCP (the direct baseline).
- :mod:`bench.processes` — the gateway and websockify as separate processes, with CPU and
  memory read from ``/proc``.
- :mod:`bench.figures` — one coroutine per figure; :mod:`bench.report` — statistics, table,
  ``results.json``.
"""
