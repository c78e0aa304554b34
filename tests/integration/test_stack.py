"""Each part of the embedded stack is the real thing: Kafka 4 in KRaft mode, an S3 server, a MongoDB-wire
catalog, Prometheus, and Spark reading Kafka through the spark-sql-kafka connector."""

from __future__ import annotations

import re
import time
import uuid

import httpx
import pytest
from confluent_kafka import Consumer
from confluent_kafka.admin import NewTopic
from pymongo.errors import DuplicateKeyError

from lab import catalog, storage, topics
from lab.config import settings
from lab.stack.services import kafka_admin_tool

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("stack")]


@pytest.fixture
def temp_topic():
    name = f"test-{uuid.uuid4().hex[:8]}"
    client = topics.admin()  # keep the client alive until its futures resolve
    client.create_topics([NewTopic(name, num_partitions=2, replication_factor=1)])[name].result(10)
    yield name
    client.delete_topics([name])[name].result(10)


def test_pipeline_topics_have_the_contract_partitions():
    found = topics.admin().list_topics(timeout=10).topics
    for name, partitions in topics.topic_partitions().items():
        assert len(found[name].partitions) == partitions, name


def test_kafka_round_trip_with_confluent_kafka(temp_topic):
    prod = topics.producer()
    topics.publish(prod, temp_topic, "stream-a", b'{"hello": "kafka"}')
    assert prod.flush(10) == 0
    consumer = Consumer({"bootstrap.servers": settings.kafka_servers, "group.id": f"t-{temp_topic}",
                         "auto.offset.reset": "earliest"})
    try:
        consumer.subscribe([temp_topic])
        deadline, msg = time.monotonic() + 20, None
        while time.monotonic() < deadline and msg is None:
            msg = consumer.poll(0.5)
        assert msg is not None and msg.error() is None
        assert (msg.key(), msg.value()) == (b"stream-a", b'{"hello": "kafka"}')
    finally:
        consumer.close()


def test_consumer_lag_counts_records_past_a_batch_end(temp_topic):
    from lab.streaming.job import offsets_behind

    prod = topics.producer()
    for i in range(5):
        prod.produce(temp_topic, key=b"k", value=str(i).encode(), partition=i % 2)
    assert prod.flush(10) == 0
    # partition 0 holds 3 records, partition 1 holds 2: a batch that ended at offsets 1 and 2 is 2 behind
    assert offsets_behind({temp_topic: {"0": 0, "1": 0}}) == 5
    assert offsets_behind({temp_topic: {"0": 1, "1": 2}}) == 2


def test_broker_is_kafka_4_in_kraft_mode():
    features = kafka_admin_tool("org.apache.kafka.tools.FeatureCommand", "describe")
    level = re.search(r"Feature: metadata\.version\s.*FinalizedVersionLevel:\s+(\S+)", features)
    assert level and level.group(1).startswith("4."), features
    quorum = kafka_admin_tool("org.apache.kafka.tools.MetadataQuorumCommand", "describe", "--status")
    assert re.search(r"LeaderId:\s+1\b", quorum), quorum  # a KRaft controller quorum leads the cluster


def test_s3_put_get_list_and_presigned_get():
    key = f"test/{uuid.uuid4().hex}.ts"
    storage.put_segment(settings.bucket_live, key, b"\x47" * 188, sha256="0" * 64)
    assert storage.get_bytes(settings.bucket_live, key) == b"\x47" * 188
    assert key in storage.list_keys(settings.bucket_live, "test/")
    head = storage.s3().head_object(Bucket=settings.bucket_live, Key=key)
    assert head["Metadata"]["sha256"] == "0" * 64
    url = storage.presigned_get(settings.bucket_live, key, ttl_s=60)
    resp = httpx.get(url, headers={"Origin": "http://localhost:8888"})  # plain HTTP, as a player fetches
    assert resp.status_code == 200 and resp.content == b"\x47" * 188
    assert resp.headers["cache-control"] == storage.IMMUTABLE
    assert resp.headers.get("access-control-allow-origin") in ("*", "http://localhost:8888")
    unsigned = httpx.get(f"{settings.s3_url}/{settings.bucket_live}/{key}")
    assert unsigned.status_code == 403, "buckets must not be public"


def test_catalog_upsert_find_and_unique_index():
    coll = catalog.collection(catalog.LIVE)
    sid = f"live-{uuid.uuid4().hex[:10]}"
    catalog.upsert(catalog.LIVE, sid, 0, {"status": "live"})
    catalog.upsert(catalog.LIVE, sid, 0, {"status": "live", "size_bytes": 1})  # idempotent
    assert coll.count_documents({"stream_id": sid}) == 1
    assert coll.find_one({"stream_id": sid}, {"_id": 0})["size_bytes"] == 1
    with pytest.raises(DuplicateKeyError):
        coll.insert_one({"stream_id": sid, "chunk_index": 0})
    coll.delete_many({"stream_id": sid})


def test_a_bulk_write_of_many_updates_completes_and_the_catalog_keeps_answering():
    """250 update statements: one command of 100+ deadlocks FerretDB v1.24.2's SQLite pool (catalog.bulk_write);
    sent in batches they complete, and a read through the pool (the health probe) still answers after."""
    from pymongo import MongoClient, UpdateOne

    name = f"test_bulk_{uuid.uuid4().hex[:6]}"
    catalog.collection(name).insert_many([{"_id": i, "v": 0} for i in range(250)])
    try:
        catalog.bulk_write(name, [UpdateOne({"_id": i}, {"$set": {"v": 1}}) for i in range(250)])
        timed = MongoClient(settings.mongo_url, socketTimeoutMS=10_000)[settings.mongo_db][name]
        assert timed.count_documents({"v": 1}) == 250
        catalog.probe()
    finally:
        catalog.db().drop_collection(name)


def test_prometheus_answers_promql_for_a_lab_target():
    deadline, result = time.monotonic() + 30, []
    while time.monotonic() < deadline and not result:
        resp = httpx.get(f"{settings.prometheus_base}/api/v1/query", params={"query": 'up{job="api"} == 1'})
        result = resp.json()["data"]["result"]
        time.sleep(0.5)
    assert result and result[0]["metric"]["job"] == "api"


def test_spark_streams_records_from_kafka_through_the_connector(temp_topic):
    from lab.streaming.session import build, kafka_stream

    prod = topics.producer()
    for i in range(5):
        topics.publish(prod, temp_topic, f"s{i % 2}", f'{{"n": {i}}}'.encode())
    prod.flush(10)
    spark = build("test-connector", master="local[1]", shuffle_partitions=1)
    query = None
    try:
        stream = kafka_stream(spark, temp_topic).selectExpr("CAST(key AS STRING) k", "CAST(value AS STRING) v")
        query = stream.writeStream.format("memory").queryName("connector_test").start()
        query.processAllAvailable()
        rows = spark.sql("SELECT v FROM connector_test").collect()
        assert sorted(r.v for r in rows) == [f'{{"n": {i}}}' for i in range(5)]
    finally:
        if query:
            query.stop()
        spark.stop()


# --- supervision: a killed service comes back by itself ------------------------------------------------------

def test_a_killed_service_is_restarted_healthy_with_no_command_typed():
    from lab import stack

    before = {s.name: s for s in stack.status()}["prometheus"]
    old_pid = stack.kill_service("prometheus")  # SIGKILL of its whole group, as a crash
    stack.wait_service_healthy("prometheus")     # the watcher's restart, nothing else
    after = {s.name: s for s in stack.status()}["prometheus"]
    assert after.healthy and after.pid != old_pid
    assert after.restarts == before.restarts + 1
    metrics = httpx.get(f"http://{settings.lab_host}:{settings.supervisor_metrics_port}/metrics").text
    counted = re.search(r'^lab_service_restarts_total\{service="prometheus"\} (\S+)$', metrics, re.M)
    assert counted and float(counted.group(1)) >= 1


EPHEMERAL_FROM = 32768  # Linux's ephemeral range starts here (macOS: 49152); every planned port is below


def test_the_port_plan_is_every_port_the_stack_listens_on():
    """Each running service listens on the ports the plan gives it, and on no other fixed port (a derived
    one, such as SeaweedFS's HTTP + 10000, would show here); OS-assigned ports are ephemeral."""
    import psutil

    from lab.stack import ports, supervisor

    planned: dict[str, set[int]] = {}
    on_demand: set[int] = set()
    for name, (service, port) in ports.plan().items():
        if name in ports.ON_DEMAND:
            on_demand.add(port)
        else:
            planned.setdefault(service, set()).add(port)
    for service, want in planned.items():
        pid = supervisor.running_pid(service)
        if pid is None:
            continue
        held = {c.laddr.port for p in supervisor.group_members(pid) for c in p.net_connections("tcp")
                if c.status == psutil.CONN_LISTEN}
        assert want <= held, f"{service}: planned {sorted(want)}, listening on {sorted(held)}"
        unplanned = sorted(p for p in held - want - on_demand if p < EPHEMERAL_FROM)
        assert not unplanned, f"{service} listens on ports outside the plan: {unplanned}"
