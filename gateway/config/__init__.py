"""The configuration: :mod:`~gateway.config.model` (frozen objects) and :mod:`~gateway.config.schema` (YAML → objects)."""

from gateway.config.model import (
           Address,
           AuditConfig,
           Config,
           ConnectionLimits,
           ListenConfig,
           LiveViewConfig,
           NetworkConfig,
           PublicURL,
           StorageConfig,
           Target,
           TLSConfig,
)
from gateway.config.schema import load_config
from gateway.config.values import parse_duration

__all__ = ["Address", "AuditConfig", "Config", "ConnectionLimits", "ListenConfig", "LiveViewConfig", "NetworkConfig",
           "PublicURL", "StorageConfig", "TLSConfig", "Target", "load_config", "parse_duration"]
