"""The one summary of the reliability figures: `.reliability/summary.json` and a printed table."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

FIGURES: dict[str, dict] = {}

# The summary's fixed shape (issue 12); every other figure goes under "details".
SHAPE = {
    "r2": ("events", "lost", "duplicated"),
    "r3": ("events", "lost"),
    "r4": ("server_errors",),
    "r5": ("cases", "server_errors", "schema_violations"),
    "r7": ("tried", "leaked"),
    "r8": ("failed_in_flight",),
}
TITLES = {
    "r2": "crash safety (kill -9)",
    "r3": "broker outage",
    "r4": "database restart",
    "r5": "fuzzing (schemathesis)",
    "r7": "isolation sweep",
    "r8": "graceful shutdown (SIGTERM)",
}
# The figures that must be 0.
ZEROES = {
    "r2": ("lost", "duplicated"),
    "r3": ("lost",),
    "r4": ("server_errors",),
    "r5": ("server_errors", "schema_violations"),
    "r7": ("leaked",),
    "r8": ("failed_in_flight",),
}


def summary(figures: dict[str, dict], form: str) -> dict:
    out: dict = {
        key: {name: figures[key].get(name) for name in names} for key, names in SHAPE.items() if key in figures
    }
    out["details"] = {
        key: {k: v for k, v in value.items() if k not in SHAPE.get(key, ())} for key, value in figures.items()
    }
    out["form"] = form
    out["written_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    return out


def write_summary(path: Path, figures: dict[str, dict], form: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(summary(figures, form), indent=2, default=str) + "\n")


def passed(figures: dict[str, dict]) -> bool:
    return all(figures[key].get(name) == 0 for key, names in ZEROES.items() if key in figures for name in names)


def print_table(figures: dict[str, dict], write: Callable[[str], None] = print) -> None:
    write("")
    write("reliability (shared/spec/quality.md R2–R8)")
    write(f"  {'bar':<32} {'figures':<60} ok")
    for key in SHAPE:
        if key not in figures:
            continue
        f = figures[key]
        shown = ", ".join(f"{name} {f.get(name)}" for name in SHAPE[key])
        extra = {
            "r2": ("kills",),
            "r3": ("drain_s", "outage_s"),
            "r4": ("recovery_s", "during"),
            "r8": ("in_flight",),
        }.get(key, ())
        shown += "".join(f", {name} {f[name]}" for name in extra if name in f)
        ok = all(f.get(name) == 0 for name in ZEROES[key])
        write(f"  {key.upper()} {TITLES[key]:<29} {shown:<60} {'yes' if ok else 'NO'}")
