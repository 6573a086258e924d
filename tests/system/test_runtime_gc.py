"""The runtime's garbage-collector settings: fewer young collections, cycles still freed."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from services.runtime import tune_garbage_collector


@pytest.fixture
def restore_gc() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


@pytest.mark.usefixtures("restore_gc")
def test_after_tuning_cycles_are_still_collected() -> None:
    tune_garbage_collector()
    assert gc.isenabled() and gc.get_freeze_count() > 0
    # A batch request's few thousand objects in flight no longer set off a young collection (at
    # CPython's default threshold of 700 these 5,000 would set off seven).
    young = gc.get_stats()[0]["collections"]
    held = [[n] for n in range(5000)]
    assert gc.get_stats()[0]["collections"] == young and len(held) == 5000

    class Node:
        other: object

    a, b = Node(), Node()
    a.other, b.other = b, a
    gone = weakref.ref(a)
    del a, b
    gc.collect()
    assert gone() is None
