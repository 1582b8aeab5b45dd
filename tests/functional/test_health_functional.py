"""``deskgate health``: the container's healthcheck, over TLS when ``tls`` is set, and readiness while draining."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.drain import DRAIN
from tests.functional.auth_helpers import auth_gateway, deskgate, free_port, restore_logging  # noqa: F401
from tests.ldap_server import write_ca, write_server_certificate

pytestmark = pytest.mark.functional


@pytest.mark.usefixtures("restore_logging")
async def test_health_speaks_tls_when_the_gateway_does(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, ca_key, ca_certificate = write_ca(tmp_path, "gateway-ca")
    certificate, key = write_server_certificate(tmp_path, ca_key, ca_certificate)
    port = free_port()
    changes = {"tls": {"cert": str(certificate), "key": str(key)}, "listen": {"http": f"0.0.0.0:{port}"}}
    async with auth_gateway(tmp_path, changes) as gateway:
        config = str(gateway.config.path)
        assert await deskgate("health", "--config", config) == 0
        assert f"https://127.0.0.1:{port}/healthz: 200" in capsys.readouterr().out
        gateway.gateway.app[DRAIN].deadline = 0.0  # as on SIGTERM
        assert await deskgate("health", "--ready", "--config", config) == 1
        assert await deskgate("health", "--config", config) == 0  # alive, if not ready
    assert await deskgate("health", "--config", config) == 1
    assert f"https://127.0.0.1:{port}/healthz does not answer" in capsys.readouterr().err
