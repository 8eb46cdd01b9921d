"""A stalled job whose flow has another run queued already (PostgreSQL state, several daemons).

A daemon defers a flow's run while another daemon's job of it runs (the queueing lock covers waiting
jobs only). When the running daemon dies, its job cannot go back to the queue (it would collide with
the waiting one), and the waiting one cannot start while the dead job holds the flow's job lock: the
stalled job must end so that the queued run goes ahead - the failover test's hang, made certain."""

from __future__ import annotations

import time

import pg_support
import pytest

from apicenterd.cluster import Cluster
from apicenterd.config.schema import StateConfig
from apicenterd.state.postgres import PostgresStore

pytestmark = pytest.mark.anyio


async def test_a_dead_daemons_job_ends_when_its_flow_has_a_run_queued_and_the_queued_run_goes_ahead():
    url, schema = pg_support.server_url(), pg_support.new_schema()
    store = PostgresStore(url, schema=schema)
    await store.open()  # migrates: the job engine's tables too
    cluster = Cluster(url, StateConfig(worker_heartbeat_seconds=1, worker_stall_seconds=3), schema=schema, name="host-a:1")
    await cluster.open()
    try:
        now = time.time()
        assert await cluster.defer("products", now - 5)
        dead = pg_support.raw(
            url, schema, "INSERT INTO procrastinate_workers (last_heartbeat) VALUES (now() - interval '1 hour') RETURNING id"
        )[0][0]
        # the dead daemon had taken that run; then another daemon queued the next one (no collision: 'doing')
        pg_support.raw(url, schema, f"UPDATE procrastinate_jobs SET status = 'doing', worker_id = {dead} WHERE args->>'flow' = 'products'")  # noqa: S608 - a number of ours
        assert await cluster.defer("products", now - 1)

        assert await cluster.recover_stalled() == ["products"]
        jobs = pg_support.raw(url, schema, "SELECT status FROM procrastinate_jobs WHERE args->>'flow' = 'products' ORDER BY id")
        assert [status for (status,) in jobs] == ["failed", "todo"]
        # the queued run can be fetched now: nothing holds the flow's job lock any more
        worker = pg_support.raw(url, schema, "INSERT INTO procrastinate_workers (last_heartbeat) VALUES (now()) RETURNING id")[0][0]
        fetched = await cluster.app.job_manager.fetch_job(queues=None, worker_id=worker)
        assert fetched is not None and fetched.task_kwargs["flow"] == "products"
        assert await cluster.recover_stalled() == []  # nothing stalled is left
    finally:
        await cluster.close()
        await store.close()
        pg_support.drop_schema(url, schema)
