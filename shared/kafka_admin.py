"""Topic creation with the replication the cluster can give, and a report of topics that have less.

Replication (the rule is shared/contracts/topics.py's): `ANALYTICS_TOPIC_REPLICATION` when set,
otherwise min(3, brokers in the cluster metadata when the topics are checked): 1 on one broker, 3 on
three or more. `min.insync.replicas` is one less (at least 1), so with replication 3 an acks=all write
needs two copies and one broker may be down. A topic that already exists with fewer replicas or a
lower min.insync.replicas is used as it is (a reassignment is an operator's decision) but reported:
a warning in the log and in /readyz's detail.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import for_code

from shared.contracts.topics import MIN_ISR, TopicSpec, default_replication, min_insync_for

log = logging.getLogger(__name__)

TOPIC_ALREADY_EXISTS = 36


@dataclass
class TopicsReport:
    """What `ensure_topics` found: the replication it wanted, what it created, what falls short."""

    replication: int
    min_insync_replicas: int
    created: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


async def ensure_topics(
    bootstrap_servers: str,
    topics: Mapping[str, TopicSpec],
    timeout: float = 30.0,
    replication: int | None = None,
) -> TopicsReport:
    """Create missing topics replicated `replication` times (None: from the broker count) and report
    existing ones that are replicated less or accept writes with fewer in-sync copies."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, request_timeout_ms=int(timeout * 1000))
    await asyncio.wait_for(admin.start(), timeout)
    try:
        brokers = len((await admin.describe_cluster())["brokers"])
        wanted = replication or default_replication(brokers)
        report = TopicsReport(wanted, min_insync_for(wanted))
        # All topics: a metadata request naming a missing topic would auto-create it with the defaults.
        existing = {t["topic"]: t for t in await admin.describe_topics() if t["topic"] in topics}
        missing = [name for name in topics if name not in existing]
        if missing:
            await create(admin, missing, topics, report)
        report.warnings += [
            w for name in topics if name in existing for w in replication_shortfall(existing[name], wanted)
        ]
        report.warnings += await insync_shortfall(admin, [n for n in topics if n in existing], report)
        for warning in report.warnings:
            log.warning("%s", warning)
        return report
    finally:
        await admin.close()


async def create(
    admin: AIOKafkaAdminClient, names: list[str], topics: Mapping[str, TopicSpec], report: TopicsReport
) -> None:
    """Create `names`; a topic another process created meanwhile is fine, any other refusal raises."""
    new = [
        NewTopic(
            name,
            topics[name].partitions,
            report.replication,
            topic_configs={MIN_ISR: str(report.min_insync_replicas), **dict(topics[name].config)},
        )
        for name in names
    ]
    response = await admin.create_topics(new)
    for name, code, *detail in response.topic_errors:
        if code not in (0, TOPIC_ALREADY_EXISTS):
            raise for_code(code)(f"creating topic {name} (replication {report.replication}): {detail}")
        if code == 0:
            report.created.append(name)
    if report.created:
        log.info("created topics %s with replication %d", report.created, report.replication)


def replication_shortfall(topic: dict, wanted: int) -> list[str]:
    """A warning when some partition of an existing topic has fewer replicas than wanted."""
    replicas = min((len(p["replicas"]) for p in topic["partitions"]), default=wanted)
    if replicas >= wanted:
        return []
    return [
        f"topic {topic['topic']} has replication {replicas}, below the wanted {wanted}: a broker loss can "
        "lose acknowledged events; reassign its partitions (kafka-reassign-partitions) or recreate it"
    ]


async def insync_shortfall(admin: AIOKafkaAdminClient, names: list[str], report: TopicsReport) -> list[str]:
    """Warnings for existing topics whose min.insync.replicas is below the wanted one."""
    if not names:
        return []
    resources = [ConfigResource(ConfigResourceType.TOPIC, name, {MIN_ISR: None}) for name in names]
    warnings = []
    for response in await admin.describe_configs(resources):
        for _code, _message, _type, name, entries in response.resources:
            values = {entry[0]: entry[1] for entry in entries}
            value = int(values.get(MIN_ISR) or 1)
            if value < report.min_insync_replicas:
                warnings.append(
                    f"topic {name} has {MIN_ISR}={value}, below the wanted {report.min_insync_replicas}: "
                    f"acks=all writes succeed with fewer copies; kafka-configs --alter --add-config "
                    f"{MIN_ISR}={report.min_insync_replicas}"
                )
    return warnings
