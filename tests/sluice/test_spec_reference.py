from __future__ import annotations

from pathlib import Path
from typing import Literal

import pytest
from pydantic import BaseModel, Field

from sluice import spec_reference as ref
from sluice.config import DatasetSpec, load_spec
from sluice.core.errors import ConfigError
from tests.conftest import SpecFactory

FIX = f"run `{ref.COMMAND}` and commit {ref.REFERENCE.name}"


def test_the_spec_reference_is_current() -> None:
    text = ref.REFERENCE.read_text(encoding="utf-8")
    assert ref.render(text) == text, f"{ref.REFERENCE} is out of date: {FIX}"


def test_every_spec_key_has_a_description() -> None:
    missing = [k.path for k in ref.spec_keys() if not k.description]
    assert not missing, f"give these keys Field(description=...), then {FIX}: {missing}"


def test_every_key_in_the_reference_is_one_the_loader_takes(
    make_dataset: SpecFactory, tmp_path: Path
) -> None:
    top = {k.path for k in ref.spec_keys() if "." not in k.path}
    assert top == {f.alias or n for n, f in DatasetSpec.model_fields.items()}
    source = {
        k.path.removeprefix("source.") for k in ref.spec_keys() if k.path.startswith("source.")
    }
    assert {"path", "format", "csv", "csv.delimiter"} <= source
    spec = make_dataset({}, extra={"source": {"path": "raw/{date}.csv", "nope": 1}})
    with pytest.raises(ConfigError, match="unknown key") as err:
        load_spec(spec)
    assert set((err.value.allowed or "").split(", ")) == {s for s in source if "." not in s}


class _Inner(BaseModel):
    """Something nested."""

    size: int = Field(default=3, ge=1, le=9, description="How big.")


class _Outer(BaseModel):
    mode: Literal["a", "b"] = Field(default="a", description="Which mode.")
    items: list[_Inner] = Field(default_factory=list, min_length=1)
    label: str | None = Field(default=None, pattern=r"^x+$", description="A label | with a pipe.")
    table: dict[str, _Inner] = Field(json_schema_extra={"key": "column"})


def test_the_table_follows_the_models() -> None:
    rows = {k.path: k for k in ref.spec_keys(_Outer)}
    assert list(rows) == ["mode", "items", "items[].size", "label", "table", "table.<column>.size"]
    assert rows["mode"] == ref.Key("mode", "string", '`"a"`', "`a`, `b`", "Which mode.")
    assert rows["items"].description == "Something nested."
    assert rows["items"].allowed == "at least 1 item"
    assert rows["items[].size"].allowed == "≥ 1; ≤ 9"
    assert rows["items[].size"].default == "`3`"
    assert rows["label"].type == "string (optional)"
    assert rows["label"].default == "none"
    assert rows["label"].allowed == "matches `^x+$`"
    assert rows["table"].default == "required"
    assert ref._cell("a | b <c> `<d>`") == "a \\| b &lt;c> `<d>`"


def test_check_fails_on_a_stale_page_and_regenerating_fixes_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    page = tmp_path / "spec.md"
    page.write_text(f"intro\n{ref.START}\n| old |\n{ref.END}\nafter\n", encoding="utf-8")
    assert ref.main(["--file", str(page), "--check"]) == 1
    assert ref.COMMAND in capsys.readouterr().err
    assert ref.main(["--file", str(page)]) == 0
    text = page.read_text(encoding="utf-8")
    assert text.startswith("intro\n")
    assert text.endswith(f"{ref.END}\nafter\n")
    assert "| `source.csv.delimiter` |" in text
    assert "| old |" not in text
    assert ref.main(["--file", str(page), "--check"]) == 0
    page.write_text("no markers\n", encoding="utf-8")
    with pytest.raises(ValueError, match="markers"):
        ref.main(["--file", str(page)])
