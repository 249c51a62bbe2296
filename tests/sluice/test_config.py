from __future__ import annotations

import datetime as dt
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

from sluice.config import (
    MAX_RANGE,
    BeyondCalendar,
    Partition,
    PartitionSpec,
    PathTemplate,
    find_spec,
    load_spec,
    partition_range,
)
from sluice.core.errors import ConfigError
from tests.conftest import DEMO_SPEC, DEMO_SUITE, ROOT, SpecFactory


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


def test_a_key_listed_twice_is_refused(make_dataset: SpecFactory) -> None:
    path = make_dataset({}, extra={"keys": ["id", "id"]})
    with pytest.raises(ConfigError, match="key column 'id' is listed twice"):
        load_spec(path)


@pytest.mark.parametrize(
    ("csv", "problem"),
    [
        ({"delimiter": "\x00"}, "is not one ASCII character other than NUL, CR or LF"),
        ({"delimiter": "\n"}, "is not one ASCII character other than NUL, CR or LF"),
        ({"delimiter": "é"}, "is not one ASCII character other than NUL, CR or LF"),
        ({"quote_char": "😀"}, "is not one ASCII character other than NUL, CR or LF"),
        ({"quote_char": "\r"}, "is not one ASCII character other than NUL, CR or LF"),
        ({"delimiter": ";", "quote_char": ";"}, "delimiter and quote_char are both ';'"),
    ],
)
def test_a_csv_dialect_the_readers_cannot_split_on_is_refused(
    make_dataset: SpecFactory, csv: dict[str, str], problem: str
) -> None:
    """Before: NUL and non-ASCII delimiters stopped the run with an internal error; a line
    break as the delimiter quarantined every row."""
    path = make_dataset({}, extra={"source": {"path": "raw/{date}.csv", "csv": csv}})
    with pytest.raises(ConfigError, match=problem) as err:
        load_spec(path)
    assert "source.csv" in str(err.value)


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


@pytest.mark.parametrize(
    ("kind", "start", "step"),
    [("day", "2024-01-01", dt.timedelta(days=1)), ("hour", "2024-01-01T00", dt.timedelta(hours=1))],
)
def test_a_range_of_more_than_a_hundred_thousand_partitions_is_refused(
    kind: str, start: str, step: dt.timedelta
) -> None:
    """Before: ``--start 0001-01-01`` (a mistyped year) began a backfill of 3.6 million days."""
    spec = PartitionSpec(key="date", kind=kind, timezone="UTC")  # type: ignore[arg-type]
    first = spec.parse(start).start
    last = first + step * (MAX_RANGE - 1)
    assert len(partition_range(spec, first, last)) == MAX_RANGE
    with pytest.raises(ValueError, match=rf"holds 100,001 {kind}s, more than the 100,000"):
        partition_range(spec, first, last + step)
    with pytest.raises(ValueError, match="more than the 100,000 one range may hold"):
        partition_range(PartitionSpec(key="date", kind="day"), "0001-01-01", "9999-12-30")


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        ("9999-12-31", "day"),
        ("9999-12", "month"),
        ("9999-12-31T00", "hour"),
        ("0001-01-01T05", "hour"),
    ],
)
def test_a_partition_whose_end_python_cannot_hold_is_refused(value: str, kind: str) -> None:
    """Before: ``--partition 9999-12-31`` stopped the run with an internal OverflowError."""
    with pytest.raises(BeyondCalendar, match=r"beyond the .* sluice can screen"):
        Partition.parse(value, kind, "date")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "kind"),
    [("9999-12-30", "day"), ("9999-11", "month"), ("0001-01-01", "day"), ("0001-01-02T00", "hour")],
)
def test_the_partitions_at_the_calendars_ends_are_screened(value: str, kind: str) -> None:
    part = Partition.parse(value, kind, "date")  # type: ignore[arg-type]
    assert part.next().start > part.start


def test_a_lag_beyond_ten_thousand_partitions_is_refused(make_dataset: SpecFactory) -> None:
    path = make_dataset({}, extra={"partition": {"key": "date", "kind": "day", "lag": 10**9}})
    with pytest.raises(ConfigError, match=r"partition\.lag"):
        load_spec(path)


def _spec_with(make_dataset: SpecFactory, source: str, **outputs: str) -> Path:
    roots = {"clean": "out/clean", "quarantine": "out/quarantine", "reports": "out/reports"}
    return make_dataset({}, extra={"source": {"path": source}, "outputs": {**roots, **outputs}})


def _line_of(path: Path, prefix: str) -> int:
    text = path.read_text().splitlines()
    return next(i for i, t in enumerate(text, 1) if t.strip().startswith(prefix))


@pytest.mark.parametrize(
    ("template", "rendered"),
    [
        ("raw/date={date}/*.csv", "raw/date=2024-02-09/*.csv"),
        ("raw/{date:%Y/%m/%d}/x.csv", "raw/2024/02/09/x.csv"),
        ("raw/{date:%Y}-{date:%j}_{date:%b}%.csv", "raw/2024-040_Feb%.csv"),
        ("raw/{{literal}}/{date}", "raw/{literal}/2024-02-09"),
    ],
)
def test_source_placeholders_render_without_format_map(
    make_dataset: SpecFactory, tmp_path: Path, template: str, rendered: str
) -> None:
    loaded = load_spec(_spec_with(make_dataset, template))
    part = loaded.spec.partition.parse("2024-02-09")
    assert loaded.source_pattern(part) == str(tmp_path / rendered)


@pytest.mark.parametrize(
    ("template", "complaint"),
    [
        ("raw/{date.__init__.__globals__[os]}/*.csv", "is not the partition key"),
        ("raw/{date.year}/*.csv", "is not the partition key"),
        ("raw/{date!r}/*.csv", "is not the partition key"),
        ("raw/{0}/*.csv", "is not the partition key"),
        ("raw/{}/*.csv", "is not the partition key"),
        ("raw/{day}/*.csv", "is not the partition key"),
        ("raw/{date:%H}/*.csv", "'%H' is not a strftime code of a date"),
        ("raw/{date:%Y%}/*.csv", "'%' is not a strftime code of a date"),
        ("raw/{date:>30}/*.csv", "holds no strftime code"),
        ("raw/{date:}/*.csv", "empty format"),
        ("raw/{date/*.csv", "a lone '{'"),
        ("raw/date}/*.csv", "a lone '}'"),
    ],
)
def test_source_placeholders_are_parsed_at_load(
    make_dataset: SpecFactory, template: str, complaint: str | None
) -> None:
    path = _spec_with(make_dataset, template)
    with pytest.raises(ConfigError) as err:
        load_spec(path)
    msg = str(err.value)
    assert msg.startswith(f"{path}:{_line_of(path, 'path: raw')}: source.path: ")
    assert "{date} or {date:<strftime codes" in msg or "brace" in msg
    if complaint is not None:
        assert complaint in msg
    assert "function" not in msg
    assert "module" not in msg


def test_a_format_of_plain_text_is_allowed_but_only_date_codes(make_dataset: SpecFactory) -> None:
    loaded = load_spec(_spec_with(make_dataset, "raw/{date:day-%d}/*.csv"))
    part = loaded.spec.partition.parse("2024-02-09")
    assert loaded.source_pattern(part).endswith("raw/day-09/*.csv")


@pytest.mark.parametrize(
    ("template", "prefix"),
    [
        ("raw/date={date}/*.csv", "raw/"),
        ("raw/sub/{date}.csv", "raw/sub/"),
        ("raw/*/{date}.csv", "raw/"),
        ("raw/data[0-9].csv", "raw/"),
        ("{date}/x.csv", ""),
        ("raw/x.csv", "raw/x.csv"),
        ("/abs/raw/day={date:%d}", "/abs/raw/"),
    ],
)
def test_fixed_prefix_is_the_folder_before_any_placeholder_or_glob(
    template: str, prefix: str
) -> None:
    assert PathTemplate.parse(template, "date").fixed_prefix == prefix


def test_environment_values_never_become_placeholders(
    make_dataset: SpecFactory, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("LAKE", str(tmp_path / "lake{date}"))
    loaded = load_spec(_spec_with(make_dataset, "${LAKE}/{date}/*.csv"))
    part = loaded.spec.partition.parse("2024-02-09")
    assert loaded.source_pattern(part) == f"{tmp_path}/lake{{date}}/2024-02-09/*.csv"
    assert loaded.source_prefix() == tmp_path / "lake{date}"


def _symlink(tmp_path: Path, name: str, target: str) -> str:
    (tmp_path / target).mkdir(parents=True, exist_ok=True)
    (tmp_path / name).symlink_to(tmp_path / target, target_is_directory=True)
    return name


SOURCE_OVERLAPS: dict[str, Callable[[Path], str]] = {
    "equal": lambda t: "raw",
    "inside": lambda t: "raw/clean",
    "containing": lambda t: ".",
    "dot_slash": lambda t: "./raw",
    "trailing_slash": lambda t: "raw/",
    "dot_dot": lambda t: "out/../raw",
    "symlink": lambda t: _symlink(t, "lake", "raw"),
    "symlink_inside": lambda t: _symlink(t, "lake", "raw") + "/not-yet/clean",
    "absolute": lambda t: str(t / "raw"),
}


@pytest.mark.parametrize("spelling", sorted(SOURCE_OVERLAPS))
def test_an_output_root_overlapping_the_source_is_refused_at_load(
    make_dataset: SpecFactory, tmp_path: Path, spelling: str
) -> None:
    root = SOURCE_OVERLAPS[spelling](tmp_path)
    path = _spec_with(make_dataset, "raw/date={date}/*.csv", clean=root)
    with pytest.raises(ConfigError) as err:
        load_spec(path)
    msg = str(err.value)
    assert msg.startswith(f"{path}:{_line_of(path, 'clean:')}: outputs.clean: ")
    assert "the folder the source files are read from (source.path at line " in msg
    assert str(tmp_path / "raw") in msg
    assert "outputs must never touch the source" in msg
    assert not (tmp_path / "out").exists()


PAIR_OVERLAPS = {
    "equal": ("out/clean", "out/clean"),
    "dot_inside": ("out/clean", "out/./clean"),
    "trailing_slash": ("out/clean", "out/clean/"),
    "dot_slash": ("out/clean", "./out/clean"),
    "dot_dot": ("out/clean", "out/x/../clean"),
    "nested": ("out/clean", "out/clean/quarantine"),
    "containing": ("out/clean/sub", "out/clean"),
}


@pytest.mark.parametrize("spelling", sorted(PAIR_OVERLAPS))
def test_output_roots_that_are_one_place_or_nested_are_refused(
    make_dataset: SpecFactory, tmp_path: Path, spelling: str
) -> None:
    clean, quarantine = PAIR_OVERLAPS[spelling]
    path = _spec_with(make_dataset, "raw/{date}/*.csv", clean=clean, quarantine=quarantine)
    with pytest.raises(ConfigError) as err:
        load_spec(path)
    msg = str(err.value)
    assert f"{path}:{_line_of(path, 'clean:')}: outputs.clean: " in msg
    assert f"(outputs.quarantine at line {_line_of(path, 'quarantine:')})" in msg
    assert str((tmp_path / clean).resolve()) in msg
    assert str((tmp_path / quarantine).resolve()) in msg


def test_a_symlink_to_another_output_root_is_refused(
    make_dataset: SpecFactory, tmp_path: Path
) -> None:
    link = _symlink(tmp_path, "alias", "out/clean")
    path = _spec_with(make_dataset, "raw/{date}/*.csv", reports=f"{link}/")
    with pytest.raises(ConfigError, match=r"outputs\.clean: .* is the same folder as .*reports"):
        load_spec(path)


def test_roots_are_resolved_once_and_used_resolved(
    make_dataset: SpecFactory, tmp_path: Path
) -> None:
    link = _symlink(tmp_path, "lake", "real")
    loaded = load_spec(_spec_with(make_dataset, "raw/{date}/*.csv", clean=f"./{link}/clean/"))
    assert loaded.output_root("clean") == tmp_path / "real" / "clean"
    assert not (tmp_path / "real" / "clean").exists()


def test_remote_outputs_are_refused_and_remote_sources_compared_as_text(
    make_dataset: SpecFactory,
) -> None:
    path = _spec_with(make_dataset, "raw/{date}/*.csv", clean="s3://bucket/clean")
    with pytest.raises(ConfigError, match=r"outputs\.clean: outputs must be local paths"):
        load_spec(path)
    loaded = load_spec(_spec_with(make_dataset, "s3://bucket/raw/{date}/*.csv"))
    assert loaded.source_prefix() == "s3://bucket/raw/"
    part = loaded.spec.partition.parse("2024-02-09")
    assert loaded.source_pattern(part) == "s3://bucket/raw/2024-02-09/*.csv"


def test_an_unset_variable_in_a_root_is_refused_at_load(make_dataset: SpecFactory) -> None:
    path = _spec_with(make_dataset, "raw/{date}/*.csv", clean="${SLUICE_TEST_UNSET_ROOT}/c")
    with pytest.raises(ConfigError, match="SLUICE_TEST_UNSET_ROOT is not set"):
        load_spec(path)


def _unshare_works() -> bool:
    if not sys.platform.startswith("linux") or shutil.which("unshare") is None:
        return False
    with tempfile.TemporaryDirectory() as tmp:
        a, b = Path(tmp) / "a", Path(tmp) / "b"
        a.mkdir()
        b.mkdir()
        probe = subprocess.run(
            ["unshare", "-rm", "sh", "-c", f"mount --bind {a} {b}"],
            capture_output=True,
            check=False,
        )
    return probe.returncode == 0


@pytest.mark.skipif(not _unshare_works(), reason="needs user namespaces to bind-mount")
@pytest.mark.parametrize(("root", "how"), [("lake", "is the same folder as"), ("lake/c", "inside")])
def test_a_bind_mount_of_the_source_is_refused(
    make_dataset: SpecFactory, tmp_path: Path, root: str, how: str
) -> None:
    path = _spec_with(make_dataset, "raw/date={date}/*.csv", clean=root)
    (tmp_path / "raw").mkdir()
    (tmp_path / "lake").mkdir()
    script = (
        f"mount --bind {tmp_path / 'raw'} {tmp_path / 'lake'} && exec {sys.executable} -c "
        f"'from sluice.config import load_spec; load_spec(\"{path}\")'"
    )
    proc = subprocess.run(
        ["unshare", "-rm", "sh", "-c", script],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=ROOT,
    )
    assert proc.returncode != 0
    assert "outputs.clean: " in proc.stderr
    assert f"{how} {tmp_path / 'raw'}, the folder the source files are read from" in proc.stderr
