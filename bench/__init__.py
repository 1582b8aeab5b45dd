"""deskgate's benchmarks, each figure measured against a peer in the same run (``make bench``).

Modules, one concern each:

- :mod:`bench.capture_file` — the captured RFB workload: a file of timestamped server messages.
- :mod:`bench.workload` — records that workload from a scripted office session on Xvnc.
- :mod:`bench.replay` — a VNC server that replays a capture, at recorded pace or flat out, and
  echoes key presses for the latency figures.
- :mod:`bench.client` — the browser's role: one RFB viewer over WebSocket (gateway or
  websockify) or plain TCP (the direct baseline).
- :mod:`bench.processes` — the processes under measurement, started in groups of their own,
  with CPU time and memory read from ``/proc``; :mod:`bench.gateway_process` — the gateway
  as such a process, with the benchmark-only recorder substitutions.
- :mod:`bench.deployment` — a gateway's config, local users with TOTP, logging in.
- :mod:`bench.harness` — routes (deskgate, websockify, direct), the cores, clean-up.
- :mod:`bench.figures` — one module per group of figures; :mod:`bench.report` — statistics,
  the table, ``results.json`` and the README's table; ``python -m bench`` runs them all.
"""
