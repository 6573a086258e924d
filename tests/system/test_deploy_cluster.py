"""docker-compose.yml's `cluster` profile stays consistent with the code and its config files: the
shape the issue asks for (3 brokers, 3 keepers, 2 shards x 2 replicas, 2+ stream processors, 2 query
and 2 ingest replicas behind the gateway), every variable a settings class reads, every mounted file
present, the ClickHouse cluster name the same everywhere, and every `make` target the docs name real.
No container is started here (no Docker engine on this machine)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections import Counter
from typing import Any

from services.runtime import parse_targets
from tests.support import REPO
from tests.system.test_deploy import compose, known_variables

CLUSTER_CONFIG = REPO / "deploy" / "clickhouse" / "cluster" / "config.d" / "cluster.xml"
GATEWAY = REPO / "deploy" / "gateway" / "nginx.conf"


def cluster_services() -> dict[str, dict[str, Any]]:
    return {name: s for name, s in compose()["services"].items() if "cluster" in s.get("profiles", [])}


def by_image(prefix: str) -> dict[str, dict[str, Any]]:
    return {n: s for n, s in cluster_services().items() if str(s.get("image", "")).startswith(prefix)}


def ours() -> dict[str, tuple[str, ...]]:
    """Our containers in the profile and the targets each runs."""
    found = {}
    for name, service in cluster_services().items():
        command = [str(part) for part in service.get("command", [])]
        if command[:3] == ["python", "-m", "services"]:
            found[name] = parse_targets(command[command.index("--target") + 1])
    return found


def test_the_single_node_shape_has_no_profile() -> None:
    """`docker compose up` keeps running the single-node shape alone."""
    services = compose()["services"]
    assert all("profiles" not in services[n] for n in ("kafka", "clickhouse", "ingest", "stream", "query"))


def test_cluster_shape() -> None:
    targets = Counter(t for ts in ours().values() for t in ts)
    assert targets["stream"] >= 2 and targets["query"] == 2 and targets["ingest"] == 2
    assert targets["etl"] >= 1 and targets["live"] >= 1
    assert len(by_image("apache/kafka")) == 3
    assert len(by_image("clickhouse/clickhouse-keeper")) == 3
    servers = by_image("clickhouse/clickhouse-server")
    macros = {(s["environment"]["CH_SHARD"], s["environment"]["CH_REPLICA"]) for s in servers.values()}
    assert len({shard for shard, _ in macros}) == 2 and len(macros) == 4
    assert {replica for _, replica in macros} == set(servers), "each {replica} macro names its server"


def test_every_variable_set_is_read_by_the_code() -> None:
    known = known_variables()
    for name in ours():
        env = cluster_services()[name]["environment"]
        assert not set(env) - known, f"{name} sets variables no settings class reads: {set(env) - known}"
        assert env["CLICKHOUSE_URL"].startswith("http://") and env["CLICKHOUSE_CLUSTER"]
        assert env["ANALYTICS_TOPIC_REPLICATION"] == "3"


def test_kafka_nodes_form_one_quorum_replicating_three_times() -> None:
    brokers = by_image("apache/kafka")
    ids = sorted(int(s["environment"]["KAFKA_NODE_ID"]) for s in brokers.values())
    assert ids == [1, 2, 3]
    for name, service in brokers.items():
        env = service["environment"]
        voters = env["KAFKA_CONTROLLER_QUORUM_VOTERS"].split(",")
        assert sorted(v.split("@")[1].split(":")[0] for v in voters) == sorted(brokers)
        assert env["KAFKA_ADVERTISED_LISTENERS"] == f"PLAINTEXT://{name}:9092"
        assert int(env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"]) == 3
        assert int(env["KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"]) == 2 == int(env["KAFKA_MIN_INSYNC_REPLICAS"])
    bootstrap = {
        s["environment"]["KAFKA_BOOTSTRAP_SERVERS"] for n, s in cluster_services().items() if n in ours()
    }
    assert bootstrap == {",".join(f"{name}:9092" for name in sorted(brokers))}


def test_clickhouse_cluster_config_matches_the_servers_and_the_services() -> None:
    root = ET.parse(CLUSTER_CONFIG).getroot()
    [cluster] = list(root.find("remote_servers"))
    shards = [[r.findtext("host") for r in shard.findall("replica")] for shard in cluster.findall("shard")]
    servers = by_image("clickhouse/clickhouse-server")
    assert sorted(h for shard in shards for h in shard) == sorted(servers)
    for hosts in shards:
        assert len({servers[h]["environment"]["CH_SHARD"] for h in hosts}) == 1, (
            "a shard's replicas share {shard}"
        )
    keepers = [n.findtext("host") for n in root.find("zookeeper")]
    assert sorted(keepers) == sorted(by_image("clickhouse/clickhouse-keeper"))
    for name in ours():
        env = cluster_services()[name]["environment"]
        assert env["CLICKHOUSE_CLUSTER"] == cluster.tag
        assert re.search(r"@([\w-]+):8123/", env["CLICKHOUSE_URL"]).group(1) in servers


def test_mounted_files_exist() -> None:
    for service in cluster_services().values():
        for volume in service.get("volumes", []):
            source = str(volume).split(":")[0]
            if source.startswith("./"):
                assert (REPO / source).is_file(), source


def test_gateway_fronts_two_replicas_of_ingest_query_and_live() -> None:
    conf = GATEWAY.read_text()
    upstreams = dict(re.findall(r"upstream (\w+)\s*\{([^}]*)\}", conf))
    for target in ("ingest", "query", "live"):
        hosts = re.findall(r"server ([\w-]+):8000", upstreams[target])
        assert len(hosts) == 2 and all(ours()[h] == (target,) for h in hosts), (target, hosts)
    gateway = cluster_services()["gateway"]
    assert set(gateway["ports"]) == {"8000:8000", "8001:8001", "8003:8003"}
    assert re.findall(r"server ([\w-]+):8000", upstreams["etl"]) == ["etl-cluster"]


def service_of_dashboard_call(path: str) -> str:
    """Which service answers a path the dashboard's pages call (README: Dashboard)."""
    if path.startswith(("/api/v1/analytics/overview", "/api/v1/analytics/metrics")):
        return "etl"
    return "live" if path.startswith("/ws/") else "query"


def test_the_gateway_sends_the_dashboards_etl_and_live_calls_to_their_services() -> None:
    """The dashboard is on the query port; every ETL or live path its pages call is proxied there."""
    conf = GATEWAY.read_text()
    query_port = conf[conf.index("listen 8001;") :]
    query_port = query_port[: query_port.index("\n    }\n")]
    routed = dict(re.findall(r"location (?:= )?(\S+) \{\s*proxy_pass http://(\w+);", query_port))
    pages = (REPO / "services" / "query" / "static" / "js").rglob("*.js")
    called = {m for f in pages for m in re.findall(r"[\"`}](/(?:api/v1|ws)/[a-z/]+)", f.read_text())}
    assert {"/api/v1/analytics/overview", "/ws/analytics/live", "/api/v1/analytics/funnel"} <= called, called
    for path in called:
        location = max((p for p in routed if path.startswith(p)), key=len)
        assert routed[location] == service_of_dashboard_call(path), (path, location, routed)


def test_every_make_target_the_docs_name_exists() -> None:
    makefile = (REPO / "Makefile").read_text()
    targets = set(re.findall(r"^([a-z][\w-]*):", makefile, re.MULTILINE))
    docs = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
    named = {t for doc in docs for t in re.findall(r"`make ([a-z][\w-]*)", doc.read_text())}
    assert "run-cluster" in named and not named - targets, named - targets
