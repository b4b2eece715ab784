"""The kit's own metrics, recorded through the global OpenTelemetry API.

`telemetry.setup_telemetry` installs the process's one MeterProvider (exporters from
OTEL_METRICS_EXPORTER); until then, and with `none`, these instruments cost nothing.
Names are under `zenops.` (Prometheus: dots become underscores, counters get `_total`,
`s` becomes `_seconds`):

| instrument | kind | attributes | what |
| --- | --- | --- | --- |
| `zenops.db.pool.connections` | gauge | service, state=used/idle | the request pool's connections |
| `zenops.db.pool.limit` | gauge | service | the pool's size (no overflow) |
| `zenops.nats.connected` | gauge | service | 1 while the process is connected to NATS |
| `zenops.outbox.backlog` | gauge | service | committed events not yet acknowledged by JetStream |
| `zenops.outbox.oldest_age` | gauge (s) | service | age of the oldest of them |
| `zenops.outbox.published` | counter | service | events the relay published |
| `zenops.consumer.lag` | gauge | service, consumer, stream | messages not yet delivered (JetStream num_pending) |
| `zenops.consumer.ack_pending` | gauge | service, consumer, stream | delivered, not yet acknowledged |
| `zenops.consumer.redelivered` | gauge | service, consumer, stream | redelivered and not yet acknowledged |
| `zenops.consumer.dead_letters.open` | gauge | service, consumer | dead letters not replayed |
| `zenops.consumer.messages` | counter | service, consumer, outcome | outcome = handled, duplicate, failed, infra_error, dead_lettered, invalid |
| `zenops.consumer.redeliveries` | counter | service, consumer | messages received with a delivery count above one |
| `zenops.consumer.dead_letters` | counter | service, consumer | messages written to dead_letters |
| `zenops.worker.up` | gauge | service, worker | 1 while a supervised worker runs, 0 in backoff or stopped |
| `zenops.worker.restarts` | counter | service, worker | restarts after a failure |

Gauges are observed at collection time from sources registered with `observe(name, fn)`
(several apps may share one process in tests, so each registers its own source).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Observation

log = logging.getLogger("zenops.metrics")

_meter = metrics.get_meter("zenops.kit")

Source = Callable[[], Iterable[Observation]]
_sources: dict[str, list[Source]] = {}


def _callback(name: str):
    def collect(_options: CallbackOptions) -> Iterable[Observation]:
        out: list[Observation] = []
        for source in list(_sources.get(name, ())):
            try:
                out.extend(source())
            except Exception as exc:  # noqa: BLE001 - one broken source must not hide the others
                log.debug("metric source failed", extra={"metric": name, "error": repr(exc)})
        return out

    return collect


_GAUGES = {
    "zenops.db.pool.connections": ("{connection}", "Connections of the request pool, by state (used, idle)."),
    "zenops.db.pool.limit": ("{connection}", "Size of the request pool."),
    "zenops.nats.connected": ("1", "1 while the process is connected to NATS."),
    "zenops.outbox.backlog": ("{event}", "Committed events not yet acknowledged by JetStream."),
    "zenops.outbox.oldest_age": ("s", "Age of the oldest unpublished outbox row."),
    "zenops.consumer.lag": ("{message}", "Messages in the stream not yet delivered to the consumer."),
    "zenops.consumer.ack_pending": ("{message}", "Messages delivered to the consumer, not yet acknowledged."),
    "zenops.consumer.redelivered": ("{message}", "Messages redelivered and not yet acknowledged."),
    "zenops.consumer.dead_letters.open": ("{message}", "Dead letters not replayed yet."),
    "zenops.worker.up": ("1", "1 while a supervised worker runs, 0 in backoff or stopped."),
}
for _name, (_unit, _description) in _GAUGES.items():
    _meter.create_observable_gauge(_name, callbacks=[_callback(_name)], unit=_unit, description=_description)

OUTBOX_PUBLISHED = _meter.create_counter(
    "zenops.outbox.published", unit="{event}", description="Outbox events published to JetStream."
)
CONSUMER_MESSAGES = _meter.create_counter(
    "zenops.consumer.messages", unit="{message}", description="Messages a consumer finished, by outcome."
)
CONSUMER_REDELIVERIES = _meter.create_counter(
    "zenops.consumer.redeliveries", unit="{message}", description="Messages received with a delivery count above one."
)
CONSUMER_DEAD_LETTERS = _meter.create_counter(
    "zenops.consumer.dead_letters", unit="{message}", description="Messages written to dead_letters."
)
WORKER_RESTARTS = _meter.create_counter(
    "zenops.worker.restarts", unit="{restart}", description="Supervised worker restarts after a failure."
)


def observe(name: str, source: Source) -> Callable[[], None]:
    """Add a source of observations for the gauge `name`; returns its removal."""
    if name not in _GAUGES:
        raise KeyError(f"unknown gauge {name!r}")
    _sources.setdefault(name, []).append(source)

    def remove() -> None:
        if source in _sources.get(name, ()):
            _sources[name].remove(source)

    return remove
