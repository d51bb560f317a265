"""Tests for robustspec.spec.yaml_loader: positions, errors, limits and scalar resolution."""

from __future__ import annotations

import math
import os
import re
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from robustspec.errors import SpecError, SpecErrors
from robustspec.spec.yaml_loader import Located, load_yaml, load_yaml_file


def errors_of(text: str, **limits: int) -> list[SpecError]:
    with pytest.raises(SpecErrors) as info:
        load_yaml(text, "suite.yaml", **limits)
    errs = info.value.errors
    assert errs and all(isinstance(e, SpecError) and e.file == "suite.yaml" for e in errs)
    return errs


# --------------------------------------------------------------------------- positions

NESTED = """\
name: demo
models:
  - arch: resnet18
    train:
      epochs: 3
      lr: 0.1
  - arch: vgg11
"""


def test_positions_of_nested_values() -> None:
    loc = load_yaml(NESTED, "suite.yaml")
    assert loc.data == {
        "name": "demo",
        "models": [{"arch": "resnet18", "train": {"epochs": 3, "lr": 0.1}}, {"arch": "vgg11"}],
    }
    assert loc.positions[()] == (1, 1)
    assert loc.positions[("name",)] == (1, 7)
    assert loc.positions[("models", 0)] == (3, 5)
    assert loc.positions[("models", 0, "train", "epochs")] == (5, 15)
    assert loc.positions[("models", 1, "arch")] == (7, 11)
    assert loc.key_positions[("models", 0, "train", "epochs")] == (5, 7)
    assert loc.key_positions[("models",)] == (2, 1)


def test_where_uses_longest_known_prefix() -> None:
    loc = load_yaml(NESTED, "suite.yaml")
    assert loc.where(("models", 0, "train", "epochs")) == (5, 15)
    assert loc.where(("models", 0, "train", "missing", 3)) == loc.positions[("models", 0, "train")]
    assert loc.where(()) == (1, 1)


def test_alias_positions_point_at_alias_and_anchor() -> None:
    loc = load_yaml("base: &b {epochs: 3}\nother: *b\n", "suite.yaml")
    assert loc.data == {"base": {"epochs": 3}, "other": {"epochs": 3}}
    assert loc.data["base"] is not loc.data["other"]  # expansions are copies, not shared objects
    assert loc.positions[("other",)] == (2, 8)
    assert loc.positions[("other", "epochs")] == loc.positions[("base", "epochs")] == (1, 19)


def test_empty_file_is_none() -> None:
    for text in ("", "# just a comment\n", "---\n"):
        assert load_yaml(text, "suite.yaml").data is None


# --------------------------------------------------------------------------- errors


def test_duplicate_keys_all_reported() -> None:
    text = "name: a\nepochs: 1\nlr: 0.1\nepochs: 2\ninner:\n  x: 1\n  x: 2\n"
    errs = errors_of(text)
    assert [(e.line, e.col, e.path, e.message) for e in errs] == [
        (4, 1, ("epochs",), "duplicate key 'epochs' (first defined at line 2)"),
        (7, 3, ("inner", "x"), "duplicate key 'x' (first defined at line 6)"),
    ]


@pytest.mark.parametrize(
    "text",
    [
        "a: !!python/object/apply:os.system ['touch {marker}']\n",
        "a: !!python/object/new:os.system ['touch {marker}']\n",
        "!!python/object/apply:os.system ['touch {marker}']\n",
        "a: !foo bar\n",
        "a: !!binary aGVsbG8=\n",
        "a: !!str 1\n",
        "a: !!map {b: 1}\n",
        "a: ! x\n",
    ],
)
def test_tags_rejected_and_never_run(text: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    marker = tmp_path / "ran"
    monkeypatch.setattr(os, "system", lambda *a: pytest.fail("os.system was called"))
    errs = errors_of(text.replace("{marker}", str(marker)))
    assert any("tags are not allowed" in e.message for e in errs)
    assert not marker.exists()


def test_merge_keys_rejected() -> None:
    errs = errors_of("base: &b {x: 1}\nmine:\n  <<: *b\n  y: 2\n")
    assert [(e.line, e.path) for e in errs] == [(3, ("mine", "<<"))]
    assert "merge keys are not supported" in errs[0].message


def test_quoted_merge_key_is_plain_string() -> None:
    assert load_yaml("'<<': 1\n", "s.yaml").data == {"<<": 1}


def test_complex_keys_rejected() -> None:
    errs = errors_of("? [1, 2]\n: x\n? {a: 1}\n: y\nok: 1\n")
    assert len(errs) == 2 and all("mapping key must be a plain value" in e.message for e in errs)


def test_keys_are_original_text() -> None:
    assert load_yaml("1: a\nnull: b\ntrue: c\n0x10: d\n", "s.yaml").data == {
        "1": "a",
        "null": "b",
        "true": "c",
        "0x10": "d",
    }


def test_undefined_and_self_referencing_aliases() -> None:
    assert "not defined" in errors_of("a: *nope\n")[0].message
    assert "not defined" in errors_of("a: &x [1, *x]\n")[0].message


def test_syntax_error_position_and_message() -> None:
    errs = errors_of("models:\n  - arch: resnet18\n    train: {epochs: 3\n  - arch: vgg\n")
    assert len(errs) == 1
    err = errs[0]
    assert (err.line, err.col) == (4, 9)  # where PyYAML notices the unclosed '{'
    assert err.path == ("models", 0, "train")
    assert "expected ',' or '}'" in err.message
    assert "Traceback" not in str(err)

    (err,) = errors_of("a: 1\nb c\nd: 2\n")
    assert err.message.startswith("YAML syntax error: could not find expected ':'")
    assert err.line == 3


def test_multiple_documents_rejected() -> None:
    (err,) = errors_of("a: 1\n---\nb: 2\n")
    assert "expected a single YAML document" in err.message
    assert err.line == 2


def test_control_character_rejected() -> None:
    (err,) = errors_of("a: 1\nb: x\x07y\n")
    assert (err.line, err.col) == (2, 5)


def test_huge_integer_is_an_error_not_a_crash() -> None:
    assert "too long" in errors_of("a: " + "9" * 6000 + "\n")[0].message


# --------------------------------------------------------------------------- limits


def billion_laughs(levels: int = 9) -> str:
    lines = ['l0: &l0 "lol"']
    for i in range(1, levels + 1):
        lines.append(f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]")
    return "\n".join(lines) + "\n"


def test_billion_laughs_stops_at_the_node_limit() -> None:
    # 9 levels of 9 aliases would expand to 9**9 nodes; the loader stops once the expansion passes its
    # node limit (bounded work, not a clock: timings belong in benchmarks/).
    errs = errors_of(billion_laughs())
    assert any("document too large (alias expansion?)" in e.message for e in errs)


def test_too_many_aliases() -> None:
    text = "a: &a 1\nb: [" + ", ".join(["*a"] * 101) + "]\n"
    assert "too many aliases" in errors_of(text)[0].message
    assert load_yaml(text, "s.yaml", max_aliases=200).data["b"] == [1] * 101


def test_max_nodes_counts_alias_expansions() -> None:
    text = "a: &a [1, 2, 3, 4]\nb: [*a, *a, *a]\n"
    assert load_yaml(text, "s.yaml", max_nodes=1000).data["b"] == [[1, 2, 3, 4]] * 3
    # 1 root + 2 keys + 5 (anchor) + 1 list + 3 * 5 (expansions) = 24 nodes
    assert load_yaml(text, "s.yaml", max_nodes=24).data
    assert "document too large" in errors_of(text, max_nodes=23)[0].message


@pytest.mark.parametrize("opener,closer", [("[", "]"), ("{a: ", "}")])
def test_deep_flow_nesting_is_a_spec_error(opener: str, closer: str) -> None:
    text = opener * 10_000 + "1" + closer * 10_000
    errs = errors_of(text)
    assert "nesting is deeper than 50 levels" in errs[0].message


def test_deep_block_nesting_is_a_spec_error() -> None:
    text = "".join(" " * i + "k:\n" for i in range(5000))
    assert "nesting is deeper" in errors_of(text)[0].message


def test_depth_through_alias_is_bounded() -> None:
    text = "a: &a [[[1]]]\nb: [[*a]]\n"
    assert load_yaml(text, "s.yaml", max_depth=6).data["b"] == [[[[[1]]]]]
    assert "nesting is deeper" in errors_of(text, max_depth=5)[0].message


def test_depth_within_limit_is_fine() -> None:
    assert load_yaml("[" * 50 + "]" * 50, "s.yaml").data is not None


# --------------------------------------------------------------------------- scalars

SCALARS = [
    ("no", "no"),
    ("yes", "yes"),
    ("on", "on"),
    ("off", "off"),
    ("y", "y"),
    ("true", True),
    ("False", False),
    ("TRUE", True),
    ("tRue", "tRue"),
    ("~", None),
    ("null", None),
    ("NULL", None),
    ("", None),
    ("4/255", "4/255"),
    ("11.19M", "11.19M"),
    ("resnet18", "resnet18"),
    ("0.004", 0.004),
    ("1e-3", 0.001),
    ("1E3", 1000.0),
    ("-2.5", -2.5),
    (".5", 0.5),
    ("1.", 1.0),
    ("42", 42),
    ("-7", -7),
    ("+3", 3),
    ("007", 7),
    ("0x1F", 31),
    ("0o17", 15),
    ("0b101", "0b101"),
    ("1_000", "1_000"),
    ("1:30", "1:30"),
    (".inf", math.inf),
    ("-.Inf", -math.inf),
    ("+.INF", math.inf),
    ("'1'", "1"),
    ('"true"', "true"),
    ("'~'", "~"),
    ("'null'", "null"),
    ("|\n  no\n", "no\n"),
    ("2024-01-01", "2024-01-01"),
]


@pytest.mark.parametrize("text,expected", SCALARS)
def test_scalar_resolution(text: str, expected: Any) -> None:
    value = load_yaml(f"v: {text}\n", "s.yaml").data["v"]
    assert type(value) is type(expected) and value == expected


def test_plain_safe_dump_differs_on_yaml_1_2_numbers() -> None:
    # Why the round-trip test needs _Yaml12QuotingDumper: SafeDumper leaves these unquoted.
    text = yaml.safe_dump({"a": "1e3", "b": "08"})
    assert load_yaml(text, "s.yaml").data == {"a": 1000.0, "b": 8}


def test_nan() -> None:
    assert math.isnan(load_yaml("v: .NaN\n", "s.yaml").data["v"])


# --------------------------------------------------------------------------- files


def test_load_yaml_file(tmp_path: Any) -> None:
    good = tmp_path / "good.yaml"
    good.write_bytes("\ufeffname: café\n".encode())
    assert load_yaml_file(good).data == {"name": "café"}

    bad = tmp_path / "bad.yaml"
    bad.write_bytes(b"name: \xff\xfe\n")
    with pytest.raises(SpecErrors) as info:
        load_yaml_file(bad)
    (err,) = info.value.errors
    assert err.line == 0 and err.file == str(bad) and "UTF-8" in err.message

    with pytest.raises(SpecErrors) as info:
        load_yaml_file(tmp_path / "missing.yaml")
    assert info.value.errors[0].line == 0


# --------------------------------------------------------------------------- properties


class _Yaml12QuotingDumper(yaml.SafeDumper):
    """SafeDumper that also quotes strings our YAML-1.2-like resolver reads as numbers.

    PyYAML decides whether a string needs quotes with its YAML 1.1 rules. Those miss a
    few forms that YAML 1.2 (and this loader) read as numbers: ``1e3`` and ``1.0e3``
    (1.1 floats need a dot and a signed exponent), ``08`` (not 1.1 octal), ``0o17``.
    Registering an extra resolver on this private subclass (never on SafeDumper) makes
    the dumper quote them, so the round trip compares like with like.
    """


_Yaml12QuotingDumper.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^(?:[-+]?[0-9]+|0x[0-9a-fA-F]+|0o[0-7]+|[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?)$"),
    None,
)

_keys = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True)
_strings = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False, allow_infinity=False)
    | _strings
)
_data = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_keys, inner, max_size=4),
    max_leaves=15,
)


def _typed(value: Any) -> Any:
    """Make equality type-strict (True != 1, 1.0 != 1, 0.0 != -0.0)."""
    if isinstance(value, dict):
        return ("dict", [(k, _typed(v)) for k, v in value.items()])
    if isinstance(value, list):
        return ("list", [_typed(v) for v in value])
    return (type(value).__name__, repr(value))


def _all_paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            out += _all_paths(v, prefix + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += _all_paths(v, prefix + (i,))
    return out


def _resolve(value: Any, path: tuple) -> Any:
    for part in path:
        value = value[part]  # KeyError / IndexError means the path does not exist
    return value


def _check_positions(loc: Located, text: str) -> None:
    lines = text.split("\n")
    assert set(loc.positions) == set(_all_paths(loc.data))
    for path, (line, col) in loc.positions.items():
        _resolve(loc.data, path)
        assert 1 <= line <= len(lines) and col >= 1
    for path in loc.key_positions:
        assert isinstance(_resolve(loc.data, path[:-1]), dict) and path[-1] in _resolve(loc.data, path[:-1])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_data, st.sampled_from([None, True, False]))
@example({"a": "1e3", "b": "08", "c": "0o17", "d": "\x85x\u2028y\ufeff", "e": "no", "f": "a\nb\n"}, None)
def test_round_trip_of_safe_dump(data: Any, flow: bool | None) -> None:
    text = yaml.dump(data, Dumper=_Yaml12QuotingDumper, default_style=None, default_flow_style=flow, sort_keys=False)
    loc = load_yaml(text, "gen.yaml")
    assert _typed(loc.data) == _typed(data)
    _check_positions(loc, text)


@settings(max_examples=60, deadline=None)
@given(_data)
def test_positions_through_aliases(data: Any) -> None:
    # safe_dump writes anchors/aliases for shared objects, so sharing exercises expansion.
    text = yaml.dump([data, data], Dumper=_Yaml12QuotingDumper, sort_keys=False)
    loc = load_yaml(text, "gen.yaml")
    assert _typed(loc.data) == _typed([data, data])
    _check_positions(loc, text)
