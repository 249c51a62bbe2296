from __future__ import annotations

from pathlib import Path

import pytest

from sluice.config import Partition, PartitionSpec, find_spec, load_spec, partition_range
from sluice.errors import ConfigError
from tests.conftest import DEMO_SPEC, DEMO_SUITE, SpecFactory


def test_the_demo_spec_loads_with_its_suite() -> None:
    loaded = load_spec(DEMO_SPEC)
    assert loaded.name == DEMO_SPEC.stem
    assert loaded.suite_path == DEMO_SUITE


def test_unknown_key_names_file_line_key_and_allowed(make_dataset: SpecFactory) -> None:
    path = make_dataset({})
    text = path.read_text().replace("keys:", "kees:")
    path.write_text(text)
    line = next(i for i, t in enumerate(text.splitlines(), 1) if t.startswith("kees:"))
    with pytest.raises(ConfigError) as err:
        load_spec(path)
    msg = str(err.value)
    assert f"{path}:{line}" in msg
    assert "unknown key" in msg
    assert "'kees'" in msg
    assert "keys" in msg
    assert "detectors" in msg


def test_nested_unknown_key_and_bad_type(make_dataset: SpecFactory) -> None:
    path = make_dataset({}, extra={"source": {"path": "x/{date}.csv", "fromat": "csv"}})
    with pytest.raises(ConfigError, match=r"source\.fromat: unknown key"):
        load_spec(path)
    path = make_dataset({}, schema={"a": "integer"})
    with pytest.raises(ConfigError) as err:
        load_spec(path)
    assert "schema.a" in str(err.value)
    assert "'integer'" in str(err.value)


def test_key_must_be_declared(make_dataset: SpecFactory) -> None:
    path = make_dataset({}, extra={"keys": ["nope"]})
    with pytest.raises(ConfigError, match="key column 'nope' is not in the schema"):
        load_spec(path)


def test_not_yaml_and_missing_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_spec(bad)
    with pytest.raises(ConfigError, match="cannot read"):
        load_spec(tmp_path / "absent.yaml")


def test_yaml_tags_that_construct_objects_are_refused(tmp_path: Path) -> None:
    evil = tmp_path / "evil.yaml"
    evil.write_text("name: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_spec(evil)


def test_unknown_dataset_lists_known(tmp_path: Path) -> None:
    (tmp_path / "one.yaml").write_text("name: one\n")
    with pytest.raises(ConfigError, match=r"no such dataset.*allowed: one"):
        find_spec("two", tmp_path)
    with pytest.raises(ConfigError, match="not a dataset name"):
        find_spec("../../etc", tmp_path)


def test_paths_resolve_from_spec_folder_and_environment(
    make_dataset: SpecFactory, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = make_dataset({}, extra={"suite": "${SUITE_DIR:-.}/suite.json"})
    loaded = load_spec(path)
    assert loaded.suite_path == (tmp_path / "suite.json").resolve()
    monkeypatch.setenv("SUITE_DIR", "/elsewhere")
    assert str(load_spec(path).suite_path) == "/elsewhere/suite.json"


def test_partitions_parse_format_and_range() -> None:
    day = PartitionSpec(key="date", kind="day")
    p = day.parse("2024-02-28")
    assert str(p) == "2024-02-28"
    assert f"{p:%Y/%m/%d}" == "2024/02/28"
    assert p.dirname == "date=2024-02-28"
    assert [str(x) for x in partition_range(day, "2024-02-28", "2024-03-01")] == [
        "2024-02-28",
        "2024-02-29",
        "2024-03-01",
    ]
    month = PartitionSpec(key="month", kind="month")
    assert [str(x) for x in partition_range(month, "2023-11", "2024-02")] == [
        "2023-11",
        "2023-12",
        "2024-01",
        "2024-02",
    ]
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        day.parse("2024-13-01")
    with pytest.raises(ValueError, match="before"):
        partition_range(day, "2024-03-02", "2024-03-01")
    assert Partition.parse("2024-03-17", "month", "m") == month.parse("2024-03")
