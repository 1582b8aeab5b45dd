"""A real Prometheus scrapes a real gateway after a session: the shipped alert rules load, every query of
every panel of the shipped Grafana dashboard returns a series, and ``promtool test rules`` passes."""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from gateway.rfb.messages import Encoding
from tests.conftest import GatewayUnderTest
from tests.functional.test_desktop_functional import open_desktop

pytestmark = [pytest.mark.functional, pytest.mark.timeout(90)]

DEPLOY = Path(__file__).parents[2] / "deploy"
RULES = DEPLOY / "prometheus" / "alerts.yml"
RULE_TESTS = DEPLOY / "prometheus" / "alerts_test.yml"
DASHBOARD = DEPLOY / "grafana" / "deskgate.json"
#: What Grafana puts in the dashboard's variables when it asks Prometheus (every node; a one-minute window).
GRAFANA_VARIABLES = {"$node": ".+", "$__rate_interval": "1m"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def panel_queries() -> list[tuple[str, str]]:
    """(panel title, PromQL) of every target of every panel, with Grafana's variables filled in."""
    queries = []
    for panel in json.loads(DASHBOARD.read_text())["panels"]:
        for target in panel.get("targets", []):
            expression = target["expr"]
            for variable, value in GRAFANA_VARIABLES.items():
                expression = expression.replace(variable, value)
            queries.append((panel["title"], expression))
    return queries


async def query(http: aiohttp.ClientSession, port: int, expression: str) -> list[dict[str, Any]]:
    try:
        answer = await (await http.get(f"http://127.0.0.1:{port}/api/v1/query", params={"query": expression})).json()
    except aiohttp.ClientError:
        return []
    assert answer["status"] == "success", (expression, answer)
    result: list[dict[str, Any]] = answer["data"]["result"]
    return result


async def test_prometheus_scrapes_the_gateway_and_every_dashboard_panel_has_a_series(
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
        wrong = await http.post(f"{gateway.url}/api/v1/login",
                                json={"username": "alice", "password": "not-her-password", "totp": "000000"})
        assert wrong.status == 401
        assert (await gateway.login(http, "alice")).status == 200
        client = await open_desktop(http, gateway)  # a session: proxy and recording bytes, an outcome
        await client.handshake()
        await client.capture([Encoding.RAW])
        await client.ws.close()

        missing = panel_queries()
        assert len(missing) >= 20
        async with asyncio.timeout(60):  # until two scrapes after the session are in every rate() window
            while missing:
                await asyncio.sleep(0.5)
                missing = [(title, expression) for title, expression in missing
                           if not await query(http, port, expression)]
        assert (await query(http, port, 'deskgate_auth_attempts_total{result="ok"}'))[0]["value"][1] == "1"
        assert (await query(http, port, 'up{job="deskgate"}'))[0]["value"][1] == "1"
        assert (await query(http, port, "deskgate_ldap_configured"))[0]["value"][1] == "0"

        rules = await (await http.get(f"http://127.0.0.1:{port}/api/v1/rules")).json()
        loaded = {rule["name"] for group in rules["data"]["groups"] for rule in group["rules"]}
        assert loaded == alert_names()
        alerts = await (await http.get(f"http://127.0.0.1:{port}/api/v1/alerts")).json()
        assert "DeskgateDirectoryDown" not in {a["labels"]["alertname"] for a in alerts["data"]["alerts"]}  # no LDAP
    finally:
        prometheus.terminate()
        prometheus.wait(timeout=10)


def alert_names() -> set[str]:
    return {rule["alert"] for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]}


def test_every_alert_has_a_passing_promtool_case() -> None:
    cases = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    firing = {check["alertname"] for case in cases for check in case["alert_rule_test"] if check["exp_alerts"]}
    assert firing == alert_names()
    quiet = {case["name"] for case in cases}
    assert "no LDAP alert when LDAP is not configured (deskgate_ldap_up stays 0)" in quiet
    result = subprocess.run([shutil.which("promtool") or "/usr/bin/promtool", "test", "rules", RULE_TESTS.name],
                            cwd=RULE_TESTS.parent, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    check = subprocess.run([shutil.which("promtool") or "/usr/bin/promtool", "check", "rules", str(RULES)],
                           capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr
