"""Contracts that hold across services: proto shape, event subjects and streams."""

import importlib

import pytest

from zenops.events.v1 import envelope_pb2
from zenops_kit.events import stream_name, subject_for
from zenops_kit.events.streams import stream_config

SERVICES = ("identity", "ops", "billing", "repogen")

# events.md catalogue: event type → producer
CATALOGUE = {
    "ops.channel_request.accepted": "ops",
    "ops.channel_request.rejected": "ops",
    "ops.assignment.status_changed": "ops",
    "repogen.work_order.accepted": "repogen",
    "repogen.work_order.ready_for_render": "repogen",
    "repogen.work_order.cancelled": "repogen",
    "repogen.deliverable.released": "repogen",
    "billing.reservation.failed": "billing",
    "billing.invoice.paid": "billing",
    "identity.user.disabled": "identity",
}


@pytest.mark.parametrize("service", SERVICES)
def test_each_service_has_its_versioned_package_and_service_info(service):
    pb2 = importlib.import_module(f"zenops.{service}.v1.{service}_pb2")
    assert pb2.DESCRIPTOR.package == f"zenops.{service}.v1"
    svc = pb2.DESCRIPTOR.services_by_name[f"{service.capitalize()}Service"]
    method = svc.methods_by_name["GetServiceInfo"]
    assert method.output_type.fields_by_name["info"].message_type.full_name == "zenops.common.v1.ServiceInfo"


@pytest.mark.parametrize("service", SERVICES)
def test_each_service_ships_its_migrations_and_entry_point(service):
    app = importlib.import_module(f"zenops_{service}.app")
    assert (app.MIGRATIONS / "env.py").exists()
    assert list((app.MIGRATIONS / "versions").glob("0001_*.py"))
    assert callable(app.build_app)


@pytest.mark.parametrize(("event_type", "producer"), sorted(CATALOGUE.items()))
def test_every_catalogued_event_lands_in_its_producers_stream(event_type, producer):
    subject = subject_for(event_type)
    assert subject == f"zenops.{event_type}"
    [pattern] = stream_config(producer, 1).subjects
    assert pattern == f"zenops.{producer}.>" and subject.startswith(pattern[:-1])
    assert stream_name(producer) == f"ZENOPS_{producer.upper()}"


def test_envelope_field_numbers_are_frozen():
    """Consumers in other services parse envelopes by number: numbers never change."""
    fields = {f.name: f.number for f in envelope_pb2.EventEnvelope.DESCRIPTOR.fields}
    assert fields == {
        "event_id": 1,
        "event_type": 2,
        "occurred_at": 3,
        "tenant_id": 4,
        "producer": 5,
        "aggregate_type": 6,
        "aggregate_id": 7,
        "aggregate_version": 8,
        "trace_context": 9,
        "payload": 10,
    }


def test_event_type_shape_is_enforced():
    for bad in ("ops.accepted", "ops..accepted", "a.b.c.d"):
        with pytest.raises(ValueError):
            subject_for(bad)
