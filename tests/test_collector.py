"""The collector settings the bot serves with, and that they are put back afterwards."""

from __future__ import annotations

import gc

import pytest

from bot.collector import YOUNG_OBJECTS, collector_for_serving


def test_serving_collects_young_objects_less_often_and_freezes_start_up() -> None:
    before = gc.get_threshold()
    with collector_for_serving():
        young, *older = gc.get_threshold()
        assert young == max(before[0], YOUNG_OBJECTS)
        assert tuple(older) == before[1:]
        assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_settings_come_back_when_serving_fails() -> None:
    before = gc.get_threshold()
    with pytest.raises(RuntimeError), collector_for_serving():
        raise RuntimeError("the adapter stopped")
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0
