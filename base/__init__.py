"""deskgate's bottom layer: the database engine, time helpers, YAML nodes with line numbers, metrics.

It imports nothing of the project; ``auth``, ``recorder`` and ``gateway`` build on it.
"""

__version__ = "0.1.0"
