"""The garbage collector's schedule (aurora/gc_tuning.py): parsed strictly, applied as given."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path

import pytest

from aurora.gc_tuning import DEFAULT_THRESHOLDS, apply_thresholds, freeze_startup_objects, parse_thresholds
from aurora.settings import SettingsError, load_settings


@pytest.fixture
def python_gc() -> Iterator[None]:
    """Leave the test process's collector as it was found."""
    before = gc.get_threshold()
    try:
        yield
    finally:
        gc.set_threshold(*before)
        gc.unfreeze()


def test_the_default_is_three_thresholds() -> None:
    assert parse_thresholds(DEFAULT_THRESHOLDS) == (50000, 20, 100)
    assert parse_thresholds(" 700, 10 ,10 ") == (700, 10, 10)


def test_empty_keeps_pythons_own() -> None:
    assert parse_thresholds("") is None
    assert parse_thresholds("  ") is None


@pytest.mark.parametrize("text", ["1,2", "1,2,3,4", "0,10,10", "-5,10,10", "a,b,c", "700;10;10", "1.5,2,3"])
def test_anything_else_is_refused_with_the_reason(text: str) -> None:
    with pytest.raises(ValueError, match="three positive integers"):
        parse_thresholds(text)


def test_a_bad_setting_is_one_line_naming_it(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"^gc_thresholds: must be three positive integers"):
        load_settings(None, environ={"AURORA_GC_THRESHOLDS": "700,10"}, overrides={"data_dir": str(tmp_path)})


def test_the_setting_reaches_the_collector(tmp_path: Path, python_gc: None) -> None:
    settings = load_settings(None, environ={"AURORA_GC_THRESHOLDS": "12345,6,7"},
                             overrides={"data_dir": str(tmp_path)})
    apply_thresholds(parse_thresholds(settings.gc_thresholds))
    assert gc.get_threshold() == (12345, 6, 7)
    apply_thresholds(parse_thresholds(""))  # "" leaves it alone
    assert gc.get_threshold() == (12345, 6, 7)


def test_objects_alive_at_startup_are_left_out_of_collections(python_gc: None) -> None:
    kept = [[] for _ in range(1000)]
    freeze_startup_objects()
    assert gc.get_freeze_count() >= len(kept)
    young = [[] for _ in range(10)]
    assert all(gc.is_tracked(x) for x in young)
    gc.collect()
    assert gc.get_freeze_count() >= len(kept)  # still out of the collections
