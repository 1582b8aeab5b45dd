"""A real Prometheus server scrapes the gateway's metrics listener and loads the shipped alert rules."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import textwrap
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import GatewayUnderTest

pytestmark = pytest.mark.functional

RULES = Path(__file__).parents[2] / "deploy" / "prometheus-rules.yml"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def test_prometheus_scrapes_the_gateway(
    gateway: GatewayUnderTest, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    metrics_target = gateway.gateway.metrics_url.removeprefix("http://").removesuffix("/metrics")
    (tmp_path / "prometheus.yml").write_text(textwrap.dedent(f"""\
        global: {{scrape_interval: 1s, evaluation_interval: 1s}}
        rule_files: ["{RULES}"]
        scrape_configs:
          - job_name: deskgate
            static_configs: [{{targets: ["{metrics_target}"]}}]
        """))
    port = free_port()
    prometheus = subprocess.Popen(
        [shutil.which("prometheus") or "/usr/bin/prometheus", f"--config.file={tmp_path / 'prometheus.yml'}",
         f"--storage.tsdb.path={tmp_path / 'tsdb'}", f"--web.listen-address=127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        await gateway.login(http, "alice")
        query = f"http://127.0.0.1:{port}/api/v1/query"
        result: list[dict[str, object]] = []
        async with asyncio.timeout(30):
            while not result:
                await asyncio.sleep(0.5)
                try:
                    answer = await (await http.get(query, params={"query": "deskgate_auth_attempts_total"})).json()
                except aiohttp.ClientError:
                    continue
                result = answer["data"]["result"]
        assert result[0]["metric"]["result"] == "ok"  # type: ignore[index]
        rules = await (await http.get(f"http://127.0.0.1:{port}/api/v1/rules")).json()
        names = {rule["name"] for group in rules["data"]["groups"] for rule in group["rules"]}
        assert {"DeskgateDown", "DeskgateRecordingFailures"} <= names
        up = await (await http.get(query, params={"query": 'up{job="deskgate"}'})).json()
        assert up["data"]["result"][0]["value"][1] == "1"
    finally:
        prometheus.terminate()
        prometheus.wait(timeout=10)
