"""The cyclic garbage collector, set for a long-running server.

CPython's defaults suit short scripts: a gen-0 pass every 700 net container allocations, and
full passes that walk every object alive, including the hundreds of thousands a server built
once at start (modules, FastAPI/pydantic schemas, protobuf descriptors, OpenTelemetry). Under
the credit benchmark the collector took ~19% of the gateway's CPU and ~8% of billing's, and
a full pass (~90 ms in the gateway) stalled every request in flight.

`settle_heap`, once a server is up: what start-up built is collected once and then frozen
(never walked again; it lives as long as the process anyway), and gen 0 runs less often, so
the short-lived objects of a request are mostly freed by reference counting before a pass
sees them. Cycles are still collected.
"""

from __future__ import annotations

import gc

# Net container allocations between gen-0 passes (CPython's default: 700), and how many passes
# of one generation make a pass of the next (default 10, 10).
THRESHOLDS = (10_000, 10, 10)


def settle_heap() -> None:
    """Collect and freeze what start-up built; from now on the collector uses THRESHOLDS."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)
