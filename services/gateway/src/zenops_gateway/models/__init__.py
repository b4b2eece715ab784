"""Pydantic models of the HTTP API (request bodies, answers) and their proto conversions,
one module per upstream area; `common.py` holds the shared conventions."""
