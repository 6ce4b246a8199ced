"""Snapshot selectors and restic's include/exclude matching, as resticm resolves them."""

from __future__ import annotations

import pytest

from resticm_core.errors import UsageError
from resticm_core.restoring import restic_match
from resticm_core.snapshot_select import (
    NoSnapshot,
    SnapshotFilter,
    check_selector,
    parse_date,
    pick,
)


def snap(sid: str, day: int, host: str = "h", paths: tuple[str, ...] = ("/srv",), **extra: str):
    return {
        "id": sid * 8,
        "short_id": sid * 2,
        "time": f"2026-11-{day:02d}T03:00:00.123456789Z",
        "hostname": host,
        "paths": list(paths),
        **extra,
    }


SNAPS = [
    snap("cccc", 3),
    snap("aaaa", 1),
    snap("bbbb", 2),
    snap("dddd", 4, host="other"),
    snap("eeee", 5, paths=("/pg/app.sql",)),  # a dump snapshot: not the directories' latest
]
FLT = SnapshotFilter(host="h", paths=("/srv",))


def test_latest_and_latest_n_follow_time_within_the_filter() -> None:
    assert pick(SNAPS, "latest", FLT)["short_id"] == "cccccccc"
    assert pick(SNAPS, "latest~1", FLT)["short_id"] == "bbbbbbbb"
    assert pick(SNAPS, "latest~2", FLT)["short_id"] == "aaaaaaaa"
    with pytest.raises(NoSnapshot, match="only 3 snapshot"):
        pick(SNAPS, "latest~3", FLT)
    assert pick(SNAPS, "latest", SnapshotFilter())["short_id"] == "eeeeeeee"


def test_before_and_after_dates() -> None:
    before = SnapshotFilter(host="h", paths=("/srv",), before=parse_date("2026-11-03", "--before"))
    assert pick(SNAPS, "latest", before)["short_id"] == "bbbbbbbb"
    after = SnapshotFilter(host="h", paths=("/srv",), after=parse_date("2026-11-03T04:00Z", "x"))
    with pytest.raises(NoSnapshot):
        pick(SNAPS, "latest", after)
    with pytest.raises(UsageError, match="not a date"):
        parse_date("yesterday", "--before")


def test_id_prefixes_ignore_the_filter_and_find_a_copy_by_its_original() -> None:
    assert pick(SNAPS, "dddd", FLT)["hostname"] == "other"
    mirror = [snap("ffff", 1, original="aaaa" * 16)]
    assert pick(mirror, "aaaaaaaa", FLT)["short_id"] == "ffffffff"
    with pytest.raises(UsageError, match="ambiguous"):
        pick([snap("abcd", 1), {**snap("abcd", 2), "id": "abcd" + "0" * 60}], "abcd", FLT)
    with pytest.raises(NoSnapshot):
        pick(SNAPS, "0123", FLT)
    for bad in ("last", "latest~x", "abc", "../x"):
        with pytest.raises(UsageError):
            check_selector(bad)


@pytest.mark.parametrize(
    ("pattern", "path", "expected"),
    [
        ("/srv/app", "/srv/app/conf/x.conf", True),  # a directory covers what is below
        ("/srv/app", "/srv/application", False),
        ("/app", "/srv/app/x", False),  # absolute: from the root only
        ("app", "/srv/app/x", True),  # relative: anywhere
        ("*.conf", "/srv/app/x.conf", True),
        ("/srv/**/x.conf", "/srv/a/b/x.conf", True),
        ("/srv/**/x.conf", "/srv/x.conf", True),
        ("/srv/[^a]pp", "/srv/app", False),
    ],
)
def test_restic_match(pattern: str, path: str, expected: bool) -> None:
    assert restic_match(pattern, path) is expected


def test_the_restore_function_survives_an_import_of_its_module() -> None:
    # A module named like the public function would replace it on the package once
    # imported (``resticm_core.restore`` became a module, not callable).
    import resticm_core
    import resticm_core.restoring

    assert callable(resticm_core.restore) and callable(resticm_core.find)
