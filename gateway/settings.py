"""What the gateway derives from one loaded config, in force as a whole until a reload replaces it.

Request handlers read :attr:`LiveSettings.current` once and use that snapshot for the whole
request, so a reload in between never mixes an old policy with a new target list.
"""

from __future__ import annotations

from dataclasses import dataclass

from auth.netacl import NetworkACL
from base.errors import ConfigError
from gateway.config import Config
from gateway.config.masks import masks_for
from gateway.desktop import TargetEndpoint
from gateway.policy import PolicySet
from gateway.reach import jump_endpoint


def load_vnc_endpoints(config: Config) -> dict[str, TargetEndpoint]:
    """Every VNC target with its password read once (a missing file is a config error)."""
    endpoints = {}
    for name, target in config.targets.items():
        if target.protocol != "vnc":
            continue
        password = None
        if target.password_file is not None:
            try:
                password = target.password_file.read_bytes().rstrip(b"\r\n")
            except OSError as exc:
                raise ConfigError(config.path, None, f"targets.{name}.password_file",
                                  f"cannot read {target.password_file}: {exc.strerror}") from exc
        endpoints[name] = TargetEndpoint(name, target.host, target.port, password,
                                         jump_endpoint(target, config.targets), masks_for(config.masks, name),
                                         target.prefer_encoding)
    return endpoints


@dataclass(frozen=True, slots=True)
class Settings:
    """One config and everything built from it: policies, the network allow list, the VNC endpoints."""

    config: Config
    policies: PolicySet
    netacl: NetworkACL
    vnc_endpoints: dict[str, TargetEndpoint]

    @classmethod
    def from_config(cls, config: Config) -> Settings:
        """Build the settings of ``config`` (raises :class:`ConfigError` when a target's secret is unreadable)."""
        network = config.network
        return cls(config, PolicySet(config.policies),
                   NetworkACL(network.allow, network.trusted_proxies, network.proxy_header),
                   load_vnc_endpoints(config))


class LiveSettings:
    """The settings in force; :meth:`replace` swaps them whole."""

    __slots__ = ("current",)

    def __init__(self, settings: Settings) -> None:
        self.current = settings

    def replace(self, settings: Settings) -> Settings:
        """Put ``settings`` in force; returns the ones they replace."""
        previous, self.current = self.current, settings
        return previous
