"""One supervisor for a process's background workers: consumers, the outbox relay,
schedulers, the revocation follower.

A worker is an async callable that runs until cancelled. When it raises, the supervisor
logs it, counts the restart (`zenops.worker.restarts`), reports the worker NOT_SERVING in
the gRPC health service under `zenops.worker.<name>` (never the process's readiness) and
starts it again after an exponential backoff with jitter; the backoff starts over once a
run lasted `stable_after` seconds. A worker that returns is finished and stays stopped.
Nothing a worker raises can end the process or vanish silently: before this, an
exception in a consumer's `ensure()` or `handle()` ended its task and nobody noticed.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from opentelemetry.metrics import Observation

from . import metrics

log = logging.getLogger("zenops.supervisor")

WORKER_HEALTH_PREFIX = "zenops.worker."

RUNNING, BACKOFF, STOPPED = "running", "backoff", "stopped"


async def cancel_all(tasks: list[asyncio.Task]) -> None:
    """Cancel `tasks` and wait for them, cancelling again while any is still running:
    nats-py's fetch() waits with asyncio.wait_for, which on Python 3.11 can swallow a
    cancellation (gh-86296), and a consumer would then keep stop() waiting forever."""
    for task in tasks:
        task.cancel()
    while pending := [t for t in tasks if not t.done()]:
        await asyncio.wait(pending, timeout=0.5)
        for task in pending:
            if not task.done():
                task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


@dataclass
class Worker:
    name: str
    run: Callable[[], Awaitable[object]]
    state: str = RUNNING
    restarts: int = 0
    last_error: str = ""
    task: asyncio.Task | None = None


class Supervisor:
    def __init__(
        self,
        service: str,
        *,
        health=None,
        min_backoff: float = 0.5,
        max_backoff: float = 10.0,
        stable_after: float = 30.0,
    ) -> None:
        self.service = service
        self.health = health  # grpc_health's aio HealthServicer, or None
        self.min_backoff = min_backoff
        self.max_backoff = max_backoff
        self.stable_after = stable_after
        self.workers: dict[str, Worker] = {}
        self._unobserve = metrics.observe("zenops.worker.up", self._observe)

    def add(self, name: str, run: Callable[[], Awaitable[object]]) -> Worker:
        """Start `run()` under supervision now (call from the running loop)."""
        if name in self.workers:
            raise ValueError(f"worker {name!r} already supervised")
        worker = Worker(name, run)
        self.workers[name] = worker
        worker.task = asyncio.create_task(self._supervise(worker), name=f"worker-{name}")
        return worker

    def statuses(self) -> list[Worker]:
        return list(self.workers.values())

    async def stop(self) -> None:
        await cancel_all([w.task for w in self.workers.values() if w.task is not None])
        for worker in self.workers.values():
            worker.state = STOPPED
        self._unobserve()

    async def _supervise(self, worker: Worker) -> None:
        loop = asyncio.get_running_loop()
        delay = self.min_backoff
        attrs = {"service": self.service, "worker": worker.name}
        while True:
            worker.state = RUNNING
            await self._report(worker)
            started = loop.time()
            try:
                await worker.run()
            except asyncio.CancelledError:
                worker.state = STOPPED
                raise
            except Exception as exc:  # noqa: BLE001 - every failure is logged, counted and restarted
                if loop.time() - started >= self.stable_after:
                    delay = self.min_backoff
                worker.state = BACKOFF
                worker.restarts += 1
                worker.last_error = f"{type(exc).__name__}: {exc}"[:500]  # nats errors have an empty repr
                metrics.WORKER_RESTARTS.add(1, attrs)
                pause = delay * random.uniform(0.8, 1.2)
                log.error(
                    "worker failed; restarting",
                    exc_info=exc,
                    extra={"worker": worker.name, "restarts": worker.restarts, "restart_in": round(pause, 2)},
                )
                await self._report(worker)
                await asyncio.sleep(pause)
                delay = min(delay * 2, self.max_backoff)
                continue
            worker.state = STOPPED
            await self._report(worker)
            log.info("worker finished", extra={"worker": worker.name})
            return

    async def _report(self, worker: Worker) -> None:
        if self.health is None:
            return
        from grpc_health.v1 import health_pb2

        status = (
            health_pb2.HealthCheckResponse.SERVING
            if worker.state == RUNNING
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        await self.health.set(WORKER_HEALTH_PREFIX + worker.name, status)

    def _observe(self) -> list[Observation]:
        return [
            Observation(1 if w.state == RUNNING else 0, {"service": self.service, "worker": w.name})
            for w in self.workers.values()
        ]
