"""Offline administration, for the `python -m bot` commands that never run a model: listing
and printing threads, usage reports, export and import, copying between databases, and
forgetting a person.

Only the CLI imports it; nothing on a turn's path does (`tests/test_layers.py`).
"""
