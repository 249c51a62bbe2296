"""Saved models: round trip through screen, and every refusal on load."""

from __future__ import annotations

import io
import json
import pickle
import zipfile
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from pydantic import ValidationError

from detectors import screen
from detectors.persist import library_versions, load_model, save_model
from detectors.screen import check_specs, fit_model
from detectors.spec import DetectorSpec
from sluice.core.errors import ConfigError, SluiceError
from sluice.core.files import file_sha256


def frame(n: int = 800, seed: int = 0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    return pl.DataFrame(
        {
            "_row_id": pl.Series(np.arange(n), dtype=pl.UInt64),
            "x": x,
            "y": 2 * x + rng.normal(scale=0.1, size=n),
            "c": rng.choice(["a", "b"], n).tolist(),
        }
    )


FEATURES = ["x", "y", {"column": "c", "kind": "categorical"}]


def batch_spec(detector: str = "iforest") -> DetectorSpec:
    return DetectorSpec.model_validate({"name": "m", "detector": detector, "features": FEATURES})


def model_spec(path: Path, sha: str, detector: str = "iforest") -> DetectorSpec:
    return DetectorSpec.model_validate(
        {
            "name": "m",
            "detector": detector,
            "features": FEATURES,
            "fit": "model",
            "model": str(path),
            "model_sha256": sha,
        }
    )


def rewrite(
    src: Path, dst: Path, *, meta: dict[str, object] | None = None, payload: bytes | None = None
) -> str:
    with zipfile.ZipFile(src) as zf:
        m = json.loads(zf.read("meta.json"))
        p = zf.read("model.pkl")
    m.update(meta or {})
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("meta.json", json.dumps(m))
        zf.writestr("model.pkl", payload if payload is not None else p)
    dst.write_bytes(buf.getvalue())
    return file_sha256(dst)


@pytest.fixture
def saved(tmp_path: Path) -> tuple[Path, str]:
    path = tmp_path / "models" / "m.sluice-model"
    sha = save_model(fit_model(frame(), batch_spec()), path)
    return path, sha


def test_saved_model_scores_like_the_fit_it_came_from(saved: tuple[Path, str]) -> None:
    path, sha = saved
    assert sha == file_sha256(path)
    new = frame(seed=1)
    from_file = screen(new, [model_spec(path, sha)])
    refit = screen(new, [batch_spec()], reference=frame())
    assert from_file.scores.equals(refit.scores)
    assert from_file.failures.equals(refit.failures)
    record = from_file.models[0]
    assert record["fit_mode"] == "model"
    assert record["model_sha256"] == sha
    assert record["n_fit"] == 800


def test_saving_is_reproducible(tmp_path: Path) -> None:
    a = save_model(fit_model(frame(), batch_spec()), tmp_path / "a")
    b = save_model(fit_model(frame(), batch_spec()), tmp_path / "b")
    assert a == b


def test_wrong_hash_is_refused_before_unpickling(
    saved: tuple[Path, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path, _ = saved

    def boom(*_: object, **__: object) -> object:
        raise AssertionError("unpickled an unchecked file")

    monkeypatch.setattr(pickle, "loads", boom)
    with pytest.raises(ConfigError, match="file hash does not match") as info:
        screen(frame(), [model_spec(path, "0" * 64)])
    assert info.value.file == str(path)


def test_features_detector_versions_and_payload_are_checked(
    saved: tuple[Path, str], tmp_path: Path
) -> None:
    path, sha = saved
    other = DetectorSpec.model_validate(
        {
            "name": "m",
            "detector": "iforest",
            "features": ["x"],
            "fit": "model",
            "model": str(path),
            "model_sha256": sha,
        }
    )
    with pytest.raises(ConfigError, match="features differ") as info:
        load_model(path, other, expected_sha256=sha)
    assert info.value.key == "features"
    with pytest.raises(ConfigError, match="another detector"):
        load_model(path, model_spec(path, sha, detector="ecod"), expected_sha256=sha)
    old = tmp_path / "old"
    versions = {**library_versions(), "pyod": "0.0.1"}
    old_sha = rewrite(path, old, meta={"versions": versions})
    with pytest.raises(ConfigError, match="other library versions") as info:
        load_model(old, model_spec(old, old_sha), expected_sha256=old_sha)
    assert "0.0.1" in str(info.value)
    bad = tmp_path / "bad"
    bad_sha = rewrite(path, bad, payload=pickle.dumps("something else"))
    with pytest.raises(ConfigError, match="payload hash"):
        load_model(bad, model_spec(bad, bad_sha), expected_sha256=bad_sha)


def test_not_a_zip_and_missing_file_are_config_errors(tmp_path: Path) -> None:
    junk = tmp_path / "junk"
    junk.write_bytes(b"not a model")
    sha = file_sha256(junk)
    with pytest.raises(ConfigError, match="not a model file"):
        load_model(junk, model_spec(junk, sha), expected_sha256=sha)
    with pytest.raises(ConfigError, match="cannot read"):
        load_model(tmp_path / "none", model_spec(junk, sha), expected_sha256=sha)


def test_spec_needs_path_and_hash_together_with_fit_model() -> None:
    with pytest.raises(ValidationError, match="model_sha256"):
        DetectorSpec.model_validate({"features": ["x"], "fit": "model", "model": "m"})
    with pytest.raises(ValidationError, match="model_sha256"):
        DetectorSpec.model_validate({"features": ["x"], "model": "m", "model_sha256": "a" * 64})


def test_fit_model_with_too_few_rows_is_a_sluice_error() -> None:
    with pytest.raises(SluiceError, match="needs at least"):
        fit_model(frame(n=5), batch_spec())


def test_check_specs_refuses_a_changed_model_file_before_any_data(
    saved: tuple[Path, str],
) -> None:
    path, sha = saved
    check_specs([model_spec(path, sha)])
    path.write_bytes(path.read_bytes() + b"x")
    with pytest.raises(ConfigError, match="file hash does not match") as info:
        check_specs([model_spec(path, sha)])
    assert info.value.key == "detectors[0].model_sha256"
    path.unlink()
    with pytest.raises(ConfigError, match="cannot read"):
        check_specs([model_spec(path, sha)])
