"""The production set-up's files (deploy/systemd, docker/): the unit is hardened and
verifies, the environment file is what the settings read, the compose file wires the
service, Prometheus and Grafana together, and the dashboard asks for metrics that exist."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from callcenter.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
UNIT = ROOT / "deploy" / "systemd" / "callcenter.service"
ENV = ROOT / "deploy" / "systemd" / "callcenter.env.example"
COMPOSE = ROOT / "docker" / "compose.yaml"
DASHBOARD = ROOT / "docker" / "grafana" / "dashboards" / "callcenter.json"
METRIC = re.compile(r"\b(callcenter_[a-z_]+)")


def unit_file(path: Path) -> dict[str, list[tuple[str, str]]]:
    """A systemd unit: section -> (key, value) in order (keys may repeat)."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] | None = None
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], [])
            continue
        key, sep, value = line.partition("=")
        assert sep and current is not None, f"not a unit line: {raw!r}"
        current.append((key.strip(), value.strip()))
    return sections


def test_the_unit_runs_as_a_hardened_service_user() -> None:
    service = dict(unit_file(UNIT)["Service"])
    assert service["User"] == "callcenter" and service["Group"] == "callcenter"
    for key, value in {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "PrivateDevices": "yes",
        "RestrictSUIDSGID": "yes",
        "CapabilityBoundingSet": "",
        "KillSignal": "SIGTERM",  # callcenter serve stops cleanly on it
    }.items():
        assert service.get(key) == value, key
    # ProtectSystem=strict: only these are writable; the data folder and the monitor spool
    writable = service["ReadWritePaths"].split()
    assert writable == ["/var/lib/callcenter", "/var/spool/asterisk/monitor"]
    env = dict(v.split("=", 1) for k, v in unit_file(UNIT)["Service"] if k == "Environment")
    assert env["CALLCENTER_DATA_DIR"] in writable and env["CALLCENTER_MONITOR_DIR"] in writable
    assert env["CALLCENTER_SIMULATOR"] == "false"
    # secrets come from the environment file, never from the unit
    assert service["EnvironmentFile"] == "/etc/callcenter/callcenter.env"
    settings_in_unit = [v for k, v in unit_file(UNIT)["Service"] if k == "Environment"]
    assert not any(re.search(r"SECRET|PASSWORD|TOKEN", v) for v in settings_in_unit)


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_systemd_analyze_verifies_the_unit(tmp_path: Path) -> None:
    # The real ExecStart does not exist on a build machine: point it at this Python.
    unit = tmp_path / "callcenter.service"
    unit.write_text(
        UNIT.read_text(encoding="utf-8").replace(
            "/opt/callcenter/venv/bin/callcenter -v serve", f"{sys.executable} -V"
        ),
        encoding="utf-8",
    )
    done = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    problems = [
        line
        for line in (done.stdout + done.stderr).splitlines()
        if str(unit) in line or "callcenter.service" in line
    ]
    assert done.returncode == 0 and not problems, done.stdout + done.stderr


def test_the_environment_file_example_is_what_the_settings_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for raw in ENV.read_text(encoding="utf-8").splitlines():
        if raw.startswith("CALLCENTER_"):
            key, _, value = raw.partition("=")
            monkeypatch.setenv(key, value)
    settings = Settings()
    assert settings.database_url and settings.database_url.startswith("postgresql+asyncpg://")
    (ami,) = settings.ami
    assert ami.enabled and ami.secret.get_secret_value() == "CHANGE-ME"
    assert settings.ops.metrics_token is not None


def test_the_compose_file_wires_the_service_prometheus_and_grafana() -> None:
    compose = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    services = compose["services"]
    assert {"db", "asterisk", "callcenter", "prometheus", "grafana"} <= set(services)
    assert services["asterisk"]["image"].endswith(":22")
    app = services["callcenter"]
    assert "CALLCENTER_OPS__METRICS_TOKEN" in app["environment"]
    assert "/readyz" in " ".join(app["healthcheck"]["test"])
    scrape = yaml.safe_load(compose["configs"]["prometheus_config"]["content"])
    (job,) = scrape["scrape_configs"]
    assert job["metrics_path"] == "/metrics"
    assert job["authorization"]["credentials_file"] == "/run/secrets/metrics_token"
    assert compose["secrets"]["metrics_token"]["environment"] == "METRICS_TOKEN"
    assert "metrics_token" in services["prometheus"]["secrets"]
    mounts = " ".join(services["grafana"]["volumes"])
    assert "./grafana/provisioning" in mounts and "./grafana/dashboards" in mounts


def dashboard_metrics() -> set[str]:
    board = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    exprs = [t["expr"] for p in board["panels"] for t in p.get("targets", [])]
    assert exprs
    return {m for e in exprs for m in METRIC.findall(e)}


def test_the_dashboard_shows_every_family_the_issue_asks_for() -> None:
    used = dashboard_metrics()
    for family in (
        "callcenter_calls_started_total",
        "callcenter_calls_ended_total",
        "callcenter_live_calls",
        "callcenter_seats",
        "callcenter_seat_ready_to_originate_seconds_bucket",
        "callcenter_ami_link_up",
        "callcenter_ami_events_total",
        "callcenter_ami_reconnects_total",
        "callcenter_outbox_pending",
        "callcenter_outbox_oldest_pending_age_seconds",
        "callcenter_recordings_backlog",
        "callcenter_recordings_failures",
        "callcenter_import_runs_total",
        "callcenter_distribution_runs_total",
        "callcenter_http_requests_total",
    ):
        assert family in used, family
