"""Pandas-syntax ``row_condition`` strings, compiled to polars masks with pandas' answers.

GX filters rows with ``DataFrame.query(row_condition, parser="pandas")``. The subset compiled here
is what suite authors write: comparisons between a column and a literal or another column
(chained comparisons too), ``in`` / ``not in`` / ``== [...]`` lists, ``.isin([...])``,
``.isnull()`` / ``.notnull()`` / ``.isna()`` / ``.notna()``, boolean columns, ``&``, ``|``,
``and``, ``or``, ``not``, ``~``, parentheses and backtick-quoted names. The string is parsed with
Python's ``ast`` module, never evaluated.

Pandas semantics kept: ``&`` and ``|`` bind looser than comparisons (pandas rewrites them to
``and``/``or``); a comparison with a missing value is false except ``!=``, which is true; a
string and a number are never equal, and ordering them raises (GX then reports an exception);
``isin`` matches numbers by value (``True == 1``) and a missing string value only when the list
holds ``None``.
"""

from __future__ import annotations

import ast
import datetime as dt
import io
import math
import tokenize
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import polars as pl

from expectations.polars_engine.plan import CheckError, Unsupported

_OPS: dict[type[ast.cmpop], str] = {
    ast.Eq: "==",
    ast.NotEq: "!=",
    ast.Lt: "<",
    ast.LtE: "<=",
    ast.Gt: ">",
    ast.GtE: ">=",
    ast.In: "in",
    ast.NotIn: "not in",
}
_FLIP = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "==", "!=": "!="}
_NULL_TESTS = {"isnull": True, "isna": True, "notnull": False, "notna": False}
_BACKTICK = "__sluice_bt_"


PARSERS: tuple[str, ...] = ("pandas",)
"""The ``condition_parser`` values sluice accepts (or none at all)."""
MAX_CONDITION_CHARS = 10_000
ALLOWED_SYNTAX = (
    "comparisons of a column with a literal or another column (chained too), `in` / `not in` "
    "a list, .isin([...]), .isnull() / .notnull() / .isna() / .notna(), boolean columns, "
    "&, |, and, or, not, ~, parentheses and `backtick quoted` column names; or GX's condition "
    "objects (comparison, nullity, and, or, pass_through)"
)
_METHODS = frozenset({*_NULL_TESTS, "isin"})
_OBJECT_OPS = {
    "==": "==",
    "!=": "!=",
    "<": "<",
    "<=": "<=",
    ">": ">",
    ">=": ">=",
    "IN": "in",
    "NOT_IN": "not in",
}
_SYNTAX_NODES: tuple[type[ast.AST], ...] = (
    ast.Expression,
    ast.BoolOp,
    ast.And,
    ast.Or,
    ast.UnaryOp,
    ast.Not,
    ast.Invert,
    ast.USub,
    ast.UAdd,
    ast.Compare,
    *_OPS,
    ast.Name,
    ast.Load,
    ast.Constant,
    ast.List,
    ast.Tuple,
    ast.Set,
    ast.Call,
    ast.Attribute,
)


class RowConditionError(Unsupported):
    """The row_condition uses pandas syntax the polars engine does not compile."""


def condition_text(value: object, parser: object = None) -> str:
    """The pandas-syntax text of a suite's ``row_condition``, checked against sluice's grammar.

    ``value`` is a string or GX's serialised condition object (``comparison``, ``nullity``,
    ``and``, ``or``, ``pass_through``). Raises :class:`RowConditionError` for an unknown
    ``condition_parser``, an object GX does not serialise, or text outside the grammar
    (``@name``, attribute access, calls other than the null tests and ``isin``, arithmetic,
    subscripts, lambdas, dunder names). Nothing is evaluated.
    """
    if parser is not None and parser not in PARSERS:
        raise RowConditionError(
            f"condition_parser {parser!r} is not supported (sluice parses conditions itself)"
        )
    text = value if isinstance(value, str) else _object_text(value)
    check_syntax(text)
    return text


def check_syntax(text: str) -> set[str]:
    """The column names of a condition, after checking every node against the grammar."""
    if len(text) > MAX_CONDITION_CHARS:
        raise RowConditionError(f"the condition is longer than {MAX_CONDITION_CHARS} characters")
    try:
        source, names = _preparse(text)
        tree = ast.parse(source.strip(), mode="eval")
    except Unsupported as exc:
        raise RowConditionError(str(exc)) from None
    except SyntaxError as exc:
        raise RowConditionError(f"not a pandas query expression: {exc.msg}") from None
    except (RecursionError, MemoryError):
        raise RowConditionError("the condition nests too deeply") from None
    out: set[str] = set()
    calls = {id(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}
    for node in ast.walk(tree):
        if not isinstance(node, _SYNTAX_NODES):
            raise RowConditionError(f"{type(node).__name__} is not allowed in a row_condition")
        if isinstance(node, ast.Attribute) and id(node) not in calls:
            raise RowConditionError(f"attribute access {ast.unparse(node)!r} is not allowed")
        if isinstance(node, ast.Call):
            func = node.func
            if (
                not isinstance(func, ast.Attribute)
                or not isinstance(func.value, ast.Name)
                or func.attr not in _METHODS
                or node.keywords
                or not all(isinstance(a, ast.List | ast.Tuple | ast.Set) for a in node.args)
            ):
                raise RowConditionError(f"call {ast.unparse(node)!r} is not allowed")
        if isinstance(node, ast.Constant) and not (
            node.value is None or isinstance(node.value, bool | int | float | str)
        ):
            raise RowConditionError(f"literal {node.value!r} is not allowed")
        if isinstance(node, ast.Name) and node.id not in ("True", "False", "None"):
            name = names.get(node.id, node.id)
            if node.id not in names and node.id.startswith("__"):
                raise RowConditionError(f"name {name!r} is not allowed")
            out.add(name)
    _check_mask(tree.body)
    return out


_LITERAL_NAMES = ("True", "False", "None")


def _check_mask(node: ast.expr) -> None:
    """Check the shape of a condition: boolean parts, comparisons of columns, literal lists."""
    if isinstance(node, ast.BoolOp):
        for value in node.values:
            _check_mask(value)
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not | ast.Invert):
        _check_mask(node.operand)
    elif isinstance(node, ast.Compare):
        operands = [node.left, *node.comparators]
        for operand in operands:
            _check_operand(operand)
        if not any(_is_column(o) for o in operands):
            raise RowConditionError(f"{ast.unparse(node)!r} compares no column")
    elif isinstance(node, ast.Call):
        func = node.func
        assert isinstance(func, ast.Attribute)
        if func.attr == "isin":
            if len(node.args) != 1:
                raise RowConditionError("isin takes one list of literals")
            _check_operand(node.args[0])
        elif node.args:
            raise RowConditionError(f"{func.attr}() takes no arguments")
    elif not _is_column(node):
        raise RowConditionError(f"{ast.unparse(node)!r} is not a condition")


def _is_column(node: ast.expr) -> bool:
    return isinstance(node, ast.Name) and node.id not in _LITERAL_NAMES


def _check_operand(node: ast.expr, *, in_list: bool = False) -> None:
    if isinstance(node, ast.Constant) or (
        isinstance(node, ast.Name) and (node.id in _LITERAL_NAMES or not in_list)
    ):
        return
    if (
        isinstance(node, ast.UnaryOp)
        and isinstance(node.op, ast.USub | ast.UAdd)
        and isinstance(node.operand, ast.Constant)
        and isinstance(node.operand.value, int | float)
        and not isinstance(node.operand.value, bool)
    ):
        return
    if isinstance(node, ast.List | ast.Tuple | ast.Set) and not in_list:
        for elt in node.elts:
            _check_operand(elt, in_list=True)
        return
    raise RowConditionError(f"{ast.unparse(node)!r} is not a column or a literal")


def _object_text(value: object) -> str:
    if not isinstance(value, dict):
        raise RowConditionError(
            f"a row_condition is a string or a GX condition object, not {type(value).__name__}"
        )
    kind = value.get("type")
    keys = {
        "pass_through": {"type", "pass_through_filter"},
        "comparison": {"type", "column", "operator", "parameter"},
        "nullity": {"type", "column", "is_null"},
        "and": {"type", "conditions"},
        "or": {"type", "conditions"},
    }
    if kind not in keys:
        raise RowConditionError(f"unknown condition type {kind!r}")
    extra = set(value) - keys[kind]
    if extra:
        raise RowConditionError(f"unknown keys {sorted(extra)} in a {kind} condition")
    if kind == "pass_through":
        text = value.get("pass_through_filter")
        if not isinstance(text, str):
            raise RowConditionError("pass_through_filter must be a string")
        return text
    if kind in ("and", "or"):
        parts = value.get("conditions")
        if not isinstance(parts, list) or not parts:
            raise RowConditionError(f"an {kind} condition needs a non-empty conditions list")
        return f" {kind} ".join(f"({_object_text(p)})" for p in parts)
    column = _object_column(value.get("column"))
    if kind == "nullity":
        is_null = value.get("is_null")
        if not isinstance(is_null, bool):
            raise RowConditionError("is_null must be true or false")
        return f"{column}.{'isnull' if is_null else 'notnull'}()"
    op = value.get("operator")
    if op not in _OBJECT_OPS:
        raise RowConditionError(f"unknown operator {op!r}; allowed: {', '.join(_OBJECT_OPS)}")
    param = value.get("parameter")
    if op in ("IN", "NOT_IN"):
        if not isinstance(param, list):
            raise RowConditionError(f"{op} takes a list parameter")
        return f"{column} {_OBJECT_OPS[op]} [{', '.join(_literal_text(v) for v in param)}]"
    if param is None:
        raise RowConditionError("a comparison needs a parameter (use a nullity condition)")
    return f"{column} {_OBJECT_OPS[op]} {_literal_text(param)}"


def _object_column(value: object) -> str:
    name = value.get("name") if isinstance(value, dict) and set(value) == {"name"} else None
    if not isinstance(name, str) or not name or "`" in name:
        raise RowConditionError(
            f"a condition column is {{'name': ...}} without backticks: {value!r}"
        )
    return f"`{name}`"


def _literal_text(value: object) -> str:
    if isinstance(value, float) and not math.isfinite(value):
        raise RowConditionError(f"condition parameters are finite numbers: {value!r}")
    if value is None or isinstance(value, bool | int | float | str):
        return repr(value)
    raise RowConditionError(f"condition parameters are numbers, strings or booleans: {value!r}")


@dataclass(frozen=True)
class _Col:
    name: str


@dataclass(frozen=True)
class _Lit:
    value: Any


def compile_row_condition(
    text: str, schema: pl.Schema, null_counts: Mapping[str, int] | None = None
) -> pl.Expr:
    """A boolean, never-null mask of the rows ``DataFrame.query(text)`` keeps.

    ``null_counts`` tells which boolean columns hold nulls (GX sees those as ``object``).
    """
    source, names = _preparse(text)
    try:
        tree = ast.parse(source.strip(), mode="eval")
    except SyntaxError as exc:
        raise RowConditionError(f"not a pandas query expression: {exc.msg}") from None
    return _Compiler(schema, names, null_counts or {}).mask(tree.body)


def condition_columns(condition: object) -> set[str] | None:
    """The column names a pandas-syntax row condition reads, or ``None`` if unknown."""
    if not isinstance(condition, str):
        return None
    try:
        source, backticks = _preparse(condition)
        tree = ast.parse(source.strip(), mode="eval")
    except (Unsupported, SyntaxError):
        return None
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id not in ("True", "False", "None"):
            out.add(backticks.get(node.id, node.id))
    return out


def _preparse(text: str) -> tuple[str, dict[str, str]]:
    """Replace backtick names by identifiers, and ``&``/``|`` by ``and``/``or`` like pandas."""
    names: dict[str, str] = {}
    out: list[str] = []
    i, quote = 0, ""
    while i < len(text):
        ch = text[i]
        if quote:
            out.append(ch)
            if ch == "\\" and i + 1 < len(text):
                out.append(text[i + 1])
                i += 1
            elif ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
            out.append(ch)
        elif ch == "`":
            end = text.find("`", i + 1)
            if end < 0:
                raise RowConditionError("unclosed backtick")
            ident = f"{_BACKTICK}{len(names)}"
            names[ident] = text[i + 1 : end]
            out.append(ident)
            i = end
        else:
            out.append(ch)
        i += 1
    source = "".join(out)
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    except (tokenize.TokenError, IndentationError) as exc:
        raise RowConditionError(f"not a pandas query expression: {exc}") from None
    rebuilt = []
    for tok in tokens:
        if tok.type == tokenize.OP and tok.string in ("&", "|"):
            rebuilt.append((tokenize.NAME, "and" if tok.string == "&" else "or"))
        elif tok.type == tokenize.OP and tok.string == "@":
            raise Unsupported("row_condition uses a local variable (@name)")
        else:
            rebuilt.append((tok.type, tok.string))
    return tokenize.untokenize(rebuilt), names


class _Compiler:
    def __init__(
        self, schema: pl.Schema, names: dict[str, str], null_counts: Mapping[str, int]
    ) -> None:
        self.schema = schema
        self.names = names
        self.null_counts = null_counts

    def mask(self, node: ast.expr) -> pl.Expr:
        if isinstance(node, ast.BoolOp):
            parts = [self.mask(v) for v in node.values]
            out = parts[0]
            for p in parts[1:]:
                out = (out & p) if isinstance(node.op, ast.And) else (out | p)
            return out
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not | ast.Invert):
            return ~self.mask(node.operand)
        if isinstance(node, ast.Compare):
            return self.compare(node)
        if isinstance(node, ast.Call):
            return self.call(node)
        if isinstance(node, ast.Name | ast.Attribute):
            col = self.operand(node)
            if isinstance(col, _Col) and self.schema[col.name] == pl.Boolean:
                return pl.col(col.name).fill_null(False)
            raise Unsupported("row_condition uses a non-boolean value as a condition")
        raise RowConditionError(f"unsupported expression {ast.unparse(node)!r}")

    def column(self, ident: str) -> _Col:
        name = self.names.get(ident, ident)
        if name not in self.schema:
            raise CheckError(f"name '{name}' is not defined")
        return _Col(name)

    def operand(self, node: ast.expr) -> _Col | _Lit:
        if isinstance(node, ast.Name):
            if node.id in ("True", "False", "None"):
                return _Lit({"True": True, "False": False, "None": None}[node.id])
            return self.column(node.id)
        if isinstance(node, ast.Constant):
            if isinstance(node.value, bool | int | float | str) or node.value is None:
                return _Lit(node.value)
            raise RowConditionError(f"unsupported literal {node.value!r}")
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
            inner = self.operand(node.operand)
            if isinstance(inner, _Lit) and isinstance(inner.value, int | float):
                sign = -1 if isinstance(node.op, ast.USub) else 1
                return _Lit(sign * inner.value)
        if isinstance(node, ast.List | ast.Tuple | ast.Set):
            values = []
            for elt in node.elts:
                item = self.operand(elt)
                if not isinstance(item, _Lit) or isinstance(item.value, list):
                    raise Unsupported("row_condition list holds something other than literals")
                values.append(item.value)
            return _Lit(values)
        raise RowConditionError(f"unsupported operand {ast.unparse(node)!r}")

    def call(self, node: ast.Call) -> pl.Expr:
        func = node.func
        if not isinstance(func, ast.Attribute) or node.keywords:
            raise RowConditionError(f"unsupported call {ast.unparse(node)!r}")
        target = self.operand(func.value)
        if not isinstance(target, _Col):
            raise RowConditionError(f"unsupported call {ast.unparse(node)!r}")
        if func.attr in _NULL_TESTS and not node.args:
            isnull = self.missing(target.name)
            return isnull if _NULL_TESTS[func.attr] else ~isnull
        if func.attr == "isin" and len(node.args) == 1:
            values = self.operand(node.args[0])
            if not isinstance(values, _Lit) or not isinstance(values.value, list):
                raise RowConditionError("isin takes a list of literals")
            return self.isin(target.name, values.value)
        raise RowConditionError(f"unsupported method {func.attr!r}")

    def compare(self, node: ast.Compare) -> pl.Expr:
        left = self.operand(node.left)
        out: pl.Expr | None = None
        for op_node, right_node in zip(node.ops, node.comparators, strict=True):
            right = self.operand(right_node)
            part = self.compare_pair(left, _OPS[type(op_node)], right)
            out = part if out is None else out & part
            left = right
        assert out is not None
        return out

    def compare_pair(self, left: _Col | _Lit, op: str, right: _Col | _Lit) -> pl.Expr:
        if op in ("in", "not in"):
            if not isinstance(left, _Col) or not isinstance(right, _Lit):
                raise RowConditionError("`in` needs a column on the left and a list on the right")
            values = right.value if isinstance(right.value, list) else [right.value]
            hit = self.isin(left.name, values)
            return hit if op == "in" else ~hit
        if isinstance(left, _Lit) and isinstance(right, _Col):
            left, right, op = right, left, _FLIP[op]
        if isinstance(left, _Lit):
            raise Unsupported("row_condition compares two literals")
        if isinstance(right, _Lit) and isinstance(right.value, list):
            if op not in ("==", "!="):
                raise CheckError("lists can only be compared with == or !=")
            hit = self.isin(left.name, right.value)
            return hit if op == "==" else ~hit
        if isinstance(right, _Col):
            return self.compare_columns(left.name, op, right.name)
        return self.compare_literal(left.name, op, right.value)

    def kind(self, name: str) -> str:
        dtype = self.schema[name]
        if dtype.is_numeric() or dtype == pl.Boolean:
            return "number"
        if dtype in (pl.String, pl.Categorical) or isinstance(dtype, pl.Enum):
            return "string"
        if dtype == pl.Date or (isinstance(dtype, pl.Datetime) and dtype.time_zone is None):
            return "datetime"
        raise Unsupported(f"row_condition on a {dtype} column")

    def value(self, name: str) -> pl.Expr:
        dtype = self.schema[name]
        if dtype.is_float():
            return pl.col(name).fill_nan(None)
        if dtype == pl.Boolean:
            return pl.col(name).cast(pl.Int8)
        if dtype == pl.Date:
            return pl.col(name).cast(pl.Datetime("us"))
        if dtype == pl.Categorical or isinstance(dtype, pl.Enum):
            return pl.col(name).cast(pl.String)
        return pl.col(name)

    def missing(self, name: str) -> pl.Expr:
        if self.schema[name].is_float():
            return pl.col(name).is_null() | pl.col(name).is_nan()
        return pl.col(name).is_null()

    def compare_literal(self, name: str, op: str, value: Any) -> pl.Expr:
        kind = self.kind(name)
        lit = _literal_for(kind, value)
        if lit is None:
            if op in ("==", "!="):
                return pl.repeat(op == "!=", pl.len())
            raise CheckError(f"Invalid comparison between column {name!r} and {value!r}")
        return _apply(self.value(name), op, pl.lit(lit)).fill_null(op == "!=")

    def compare_columns(self, a: str, op: str, b: str) -> pl.Expr:
        ka, kb = self.kind(a), self.kind(b)
        if ka != kb:
            if op in ("==", "!="):
                return pl.repeat(op == "!=", pl.len())
            raise CheckError(f"Invalid comparison between columns {a!r} and {b!r}")
        return _apply(self.value(a), op, self.value(b)).fill_null(op == "!=")

    def isin(self, name: str, values: Sequence[Any]) -> pl.Expr:
        kind = self.kind(name)
        kept = [v for v in (_literal_for(kind, v) for v in values) if v is not None]
        if kind == "datetime" and any(isinstance(v, str) for v in values):
            raise Unsupported("row_condition isin with date strings on a datetime column")
        dtype = _dtype_for(kind, self.schema[name], kept)
        hit = self.value(name).cast(dtype).is_in(pl.Series(kept, dtype=dtype).implode())
        on_objects = kind == "string" or (
            self.schema[name] == pl.Boolean and self.null_counts.get(name, 0) > 0
        )
        return hit.fill_null(on_objects and None in values)


def _literal_for(kind: str, value: Any) -> Any:
    if value is None:
        return None
    if kind == "number":
        if isinstance(value, bool):
            return int(value)
        return value if isinstance(value, int | float) else None
    if kind == "string":
        return value if isinstance(value, str) else None
    if isinstance(value, str):
        try:
            return dt.datetime.fromisoformat(value)
        except ValueError:
            raise Unsupported(f"row_condition date literal {value!r}") from None
    raise CheckError(f"Invalid comparison between a datetime column and {value!r}")


def _dtype_for(kind: str, dtype: pl.DataType, values: Sequence[Any]) -> pl.DataType:
    if kind == "string":
        return pl.String()
    if kind == "datetime":
        return pl.Datetime("us")
    ints = all(isinstance(v, int) and -(2**63) <= v < 2**63 for v in values)
    return pl.Int64() if dtype.is_integer() and ints else pl.Float64()


def _apply(left: pl.Expr, op: str, right: pl.Expr) -> pl.Expr:
    if op == "==":
        return left == right
    if op == "!=":
        return left != right
    if op == "<":
        return left < right
    if op == "<=":
        return left <= right
    if op == ">":
        return left > right
    return left >= right
