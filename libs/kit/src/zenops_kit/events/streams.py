"""One JetStream stream per producing service, created or updated at start-up."""

from __future__ import annotations

from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import NotFoundError

# JetStream de-duplicates Nats-Msg-Id within this window; the inbox covers the rest.
DUPLICATE_WINDOW_SECONDS = 120.0
MAX_AGE_SECONDS = 14 * 24 * 3600.0


def stream_name(producer: str) -> str:
    return "ZENOPS_" + producer.upper()


def stream_config(producer: str, replicas: int) -> StreamConfig:
    return StreamConfig(
        name=stream_name(producer),
        subjects=[f"zenops.{producer}.>"],
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        discard=DiscardPolicy.OLD,
        max_age=MAX_AGE_SECONDS,
        duplicate_window=DUPLICATE_WINDOW_SECONDS,
        num_replicas=replicas,
    )


async def ensure_stream(js: JetStreamContext, producer: str, replicas: int = 1) -> None:
    config = stream_config(producer, replicas)
    try:
        await js.stream_info(config.name)
    except NotFoundError:
        try:
            await js.add_stream(config)
            return
        except Exception:  # noqa: BLE001 - another process may have created it meanwhile
            await js.stream_info(config.name)
    await js.update_stream(config)
