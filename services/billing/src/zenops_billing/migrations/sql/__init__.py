"""The SQL files of billing's migrations: versioned, never edited once applied (a change is a
new file of a new migration)."""

from pathlib import Path

_DIR = Path(__file__).resolve().parent


def sql_file(name: str) -> str:
    """One statement from this folder (its leading comment block dropped). One statement per
    file: every statement is executed on its own (the asyncpg driver prepares each one, so one
    command per execute)."""
    lines = (_DIR / name).read_text(encoding="utf-8").splitlines(True)
    while lines and (lines[0].startswith("--") or not lines[0].strip()):
        lines.pop(0)
    return "".join(lines)
