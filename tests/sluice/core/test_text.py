"""The text of values: compact JSON as :func:`json.dumps` writes it."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st

from sluice.core.text import json_text

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(10**40), max_value=10**40)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text()
)
JSON = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


@given(JSON)
@example(-0.0)
@example(1e16)
@example(5e-324)
@example(1e-05)
@example(float("nan"))
@example(float("-inf"))
@example(2**63)
@example(True)
@example([1.5, {"a": False}])
def test_json_text_is_compact_json_dumps(value: Any) -> None:
    assert json_text(value) == json.dumps(value, separators=(",", ":"), default=str)


def test_values_json_has_no_type_for_are_their_str() -> None:
    class Thing:
        def __str__(self) -> str:
            return "thing"

    assert json_text(Thing()) == '"thing"'
    assert json_text({"at": Thing()}) == '{"at":"thing"}'
