"""docker-compose.yml's `monitoring` profile stays consistent with the code: official images, every
mounted file present, Prometheus scraping every one of our containers (both shapes) with the token
they are given, Grafana provisioned with that Prometheus and the dashboard, and every metric the
dashboard names declared in the code. No container is started here (no Docker engine); whether the
dashboard's metrics exist and move is tests/system/test_metrics.py's."""

from __future__ import annotations

import json
import re
from typing import Any

import yaml

from services.runtime import parse_targets
from tests.support import REPO
from tests.system.test_deploy import compose

PROMETHEUS = REPO / "deploy" / "prometheus" / "prometheus.yml"
GRAFANA = REPO / "deploy" / "grafana"
DASHBOARD = GRAFANA / "analytics-dashboard.json"
TOKEN_FILE = "/etc/prometheus/metrics-token"


def monitoring() -> dict[str, dict[str, Any]]:
    return {n: s for n, s in compose()["services"].items() if "monitoring" in s.get("profiles", [])}


def our_containers() -> dict[str, str]:
    """Every container running our entry point (either shape) -> its one target."""
    found = {}
    for name, service in compose()["services"].items():
        command = [str(part) for part in service.get("command", [])]
        if command[:3] == ["python", "-m", "services"]:
            [target] = parse_targets(command[command.index("--target") + 1])
            found[name] = target
    return found


def mount_sources(service: dict[str, Any]) -> list[tuple[str, str]]:
    """(local file, path in the container) of each bind mount of a file of this repository."""
    mounts = [str(v).split(":") for v in service.get("volumes", []) if str(v).startswith("./")]
    return [(parts[0], parts[1]) for parts in mounts]


def test_official_images_in_their_own_profile() -> None:
    services = monitoring()
    assert {s["image"].split(":")[0] for s in services.values()} == {"prom/prometheus", "grafana/grafana"}
    assert all(s["profiles"] == ["monitoring"] for s in services.values())
    for service in services.values():
        for source, _ in mount_sources(service):
            assert (REPO / source).is_file(), source


def test_prometheus_scrapes_every_container_with_the_token() -> None:
    config = yaml.safe_load(PROMETHEUS.read_text())
    scraped: dict[str, str] = {}
    for job in config["scrape_configs"]:
        assert job["authorization"] == {"type": "Bearer", "credentials_file": TOKEN_FILE}, job["job_name"]
        for discovery in job["dns_sd_configs"]:
            assert discovery["port"] == 8000
            scraped |= {name: job["job_name"] for name in discovery["names"]}
    assert scraped == our_containers(), "every container of ours, in the job of its target, and no other"
    [prometheus] = [s for s in monitoring().values() if s["image"].startswith("prom/")]
    assert ("./deploy/prometheus/prometheus.yml", "/etc/prometheus/prometheus.yml") in mount_sources(
        prometheus
    )
    [token] = prometheus["configs"]
    assert token["target"] == TOKEN_FILE
    assert compose()["configs"][token["source"]]["content"] == "${ANALYTICS_METRICS_TOKEN:-}"
    for name in our_containers():
        environment = compose()["services"][name]["environment"]
        assert environment["ANALYTICS_METRICS_TOKEN"] == "${ANALYTICS_METRICS_TOKEN:-}", name


def test_grafana_is_provisioned_with_prometheus_and_the_dashboard() -> None:
    [grafana] = [s for s in monitoring().values() if s["image"].startswith("grafana/")]
    mounts = dict(mount_sources(grafana))
    datasources = yaml.safe_load((GRAFANA / "provisioning/datasources/prometheus.yml").read_text())
    [source] = datasources["datasources"]
    assert source["url"] == "http://prometheus:9090" and "prometheus" in compose()["services"]
    providers = yaml.safe_load((GRAFANA / "provisioning/dashboards/analytics.yml").read_text())
    [provider] = providers["providers"]
    dashboard_target = mounts["./deploy/grafana/analytics-dashboard.json"]
    assert dashboard_target.startswith(provider["options"]["path"] + "/")
    dashboard = json.loads(DASHBOARD.read_text())
    uids = {t["datasource"]["uid"] for p in dashboard["panels"] for t in p.get("targets", [])}
    assert uids == {source["uid"]}


def test_every_dashboard_metric_is_declared_in_the_code() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    names = {n for e in exprs for n in re.findall(r"\banalytics_[a-z0-9_]+", e)}
    source = "\n".join(p.read_text() for root in ("shared", "services") for p in (REPO / root).rglob("*.py"))
    for name in sorted(names):
        base = re.sub(r"_(bucket|sum|count|total)$", "", name)
        declared = base.removeprefix("analytics_")
        assert f'"{declared}' in source or f'"{base}"' in source, f"{name} is declared nowhere"
