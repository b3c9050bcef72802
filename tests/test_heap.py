"""The collector's settings for a long-running process."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from mailbot.heap import (
    YOUNG_COLLECTION_AFTER,
    collections_paused,
    pause_collections,
    settle_after_startup,
)


@pytest.fixture
def collector() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.enable()
    gc.unfreeze()
    gc.set_threshold(*threshold)


@pytest.mark.usefixtures("collector")
def test_what_startup_built_is_left_out_of_later_collections() -> None:
    built_at_startup = [{"rule": n} for n in range(1000)]
    settle_after_startup()
    assert gc.get_freeze_count() >= len(built_at_startup)
    assert gc.get_threshold()[0] == YOUNG_COLLECTION_AFTER
    cycle: list[object] = []
    cycle.append(cycle)
    del cycle
    assert gc.collect() >= 1  # garbage made later is still collected


@pytest.mark.usefixtures("collector")
def test_collections_paused_at_startup_start_again_once_it_has_settled() -> None:
    pause_collections()  # a worker's first act
    assert not gc.isenabled()
    settle_after_startup()
    assert gc.isenabled()


@pytest.mark.usefixtures("collector")
def test_a_command_imports_with_collections_paused_then_runs_with_them() -> None:
    with collections_paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    gc.disable()
    with collections_paused():
        pass
    assert not gc.isenabled()  # left as it was found
