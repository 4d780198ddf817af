"""The agent's deployment files: K3s DaemonSet, systemd unit, container command, settings."""

from __future__ import annotations

import configparser
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import typer
import yaml

from edge_agent.cli import agent_app
from edge_agent.config import load_settings
from tests.edge_agent.support import ROOT

DEPLOY = ROOT / "deploy"
KUBERNETES_VERSION = "1.30.0"


def manifests() -> list[dict[str, Any]]:
    text = (DEPLOY / "k3s" / "edgeplane-agent.yaml").read_text()
    return [doc for doc in yaml.safe_load_all(text) if doc]


def daemonset() -> dict[str, Any]:
    return next(doc for doc in manifests() if doc["kind"] == "DaemonSet")


@pytest.mark.parametrize("document", manifests(), ids=lambda d: f"{d['kind']}")
def test_k3s_manifest_validates_against_kubernetes_schemas(document: dict[str, Any]) -> None:
    kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)


def test_daemonset_runs_the_agent_with_its_secret_state_limits_and_probes() -> None:
    docs = manifests()
    kinds = {doc["kind"] for doc in docs}
    assert {"Namespace", "Secret", "ConfigMap", "DaemonSet"} <= kinds
    spec = daemonset()["spec"]["template"]["spec"]
    (agent,) = spec["containers"]
    assert agent["args"][:1] == ["run"]
    port = next(p for p in agent["ports"] if p["name"] == "http")["containerPort"]
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert agent[probe]["httpGet"]["port"] in ("http", port)
    assert agent["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert agent["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert set(agent["resources"]["limits"]) == {"cpu", "memory"}
    assert agent["securityContext"]["runAsNonRoot"] is True
    assert agent["securityContext"]["readOnlyRootFilesystem"] is True

    volumes = {v["name"]: v for v in spec["volumes"]}
    mounts = {m["name"]: m["mountPath"] for m in agent["volumeMounts"]}
    env = {e["name"]: e.get("value") for e in agent["env"]}
    assert volumes["state"]["hostPath"]["path"] == mounts["state"]
    assert env["EDGEPLANE_AGENT_STATE_DIR"] == mounts["state"]
    secret = next(doc for doc in docs if doc["kind"] == "Secret")
    assert volumes["enrollment"]["secret"]["secretName"] == secret["metadata"]["name"]
    assert env["EDGEPLANE_AGENT_ENROLLMENT_TOKEN_FILE"].startswith(mounts["enrollment"] + "/")

    config = next(doc for doc in docs if doc["kind"] == "ConfigMap")
    assert f"port = {port}" in config["data"]["agent.toml"]


def test_shipped_settings_files_load(tmp_path: Path) -> None:
    config = next(doc for doc in manifests() if doc["kind"] == "ConfigMap")
    from_k3s = tmp_path / "agent.toml"
    from_k3s.write_text(config["data"]["agent.toml"])
    settings = load_settings(from_k3s)
    assert settings.http.host == "0.0.0.0"  # noqa: S104 - the terminals' LAN
    example = load_settings(DEPLOY / "agent" / "agent.toml")
    assert example.http.host == "127.0.0.1"
    assert example.state_dir == Path("/var/lib/edgeplane-agent")


def test_container_command_is_an_agent_command() -> None:
    text = (DEPLOY / "docker" / "agent.Dockerfile").read_text()
    entrypoint = json.loads(re.search(r"^ENTRYPOINT (.+)$", text, re.M).group(1))  # type: ignore[union-attr]
    command = json.loads(re.search(r"^CMD (.+)$", text, re.M).group(1))  # type: ignore[union-attr]
    assert entrypoint == ["edgeplane", "agent"]
    group = typer.main.get_command(agent_app)
    assert command[0] in group.commands  # type: ignore[attr-defined]
    assert "USER 10001:10001" in text
    assert daemonset()["spec"]["template"]["spec"]["containers"][0]["args"] == command


def test_systemd_unit_is_hardened_and_valid(tmp_path: Path) -> None:
    unit_file = DEPLOY / "systemd" / "edgeplane-agent.service"
    unit = configparser.ConfigParser(strict=True, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read(unit_file)
    service = unit["Service"]
    assert service["DynamicUser"] == "yes"
    assert service["StateDirectory"] == "edgeplane-agent"
    assert service["NoNewPrivileges"] == "yes"
    assert service["ProtectSystem"] == "strict"
    assert service["Restart"] == "on-failure"
    assert service["KillSignal"] == "SIGTERM"
    assert " agent run --config " in service["ExecStart"]
    assert service["Environment"] == "EDGEPLANE_AGENT_STATE_DIR=/var/lib/edgeplane-agent"

    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        return
    executable = ROOT / ".venv" / "bin" / "edgeplane"
    local = tmp_path / "edgeplane-agent.service"
    local.write_text(
        unit_file.read_text().replace("/opt/edgeplane/venv/bin/edgeplane", str(executable))
    )
    result = subprocess.run(
        [analyze, "verify", str(local)], capture_output=True, text=True, timeout=60, check=False
    )
    problems = [
        line
        for line in (result.stdout + result.stderr).splitlines()
        if "edgeplane-agent.service" in line
    ]
    assert problems == [], problems
