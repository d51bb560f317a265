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
from robustspec.spec.text import clip, shorten
from robustspec.spec.yaml_loader import (
    MAX_ERRORS,
    MAX_FILE_BYTES,
    MAX_KEY_CHARS,
    MAX_SCALAR_CHARS,
    Located,
    load_yaml,
    load_yaml_file,
)


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
    (err,) = errors_of("a: &x [1, *x]\n")
    assert (err.line, err.col, err.path) == (1, 11, ("a", 1))
    assert err.message.startswith("alias *x refers to itself")
    assert "an anchor cannot be used inside its own node" in err.message


def test_alias_deep_inside_its_own_anchor_refers_to_itself() -> None:
    (err,) = errors_of("a: &x\n  b:\n    - {c: *x}\n")
    assert (err.line, err.col, err.path) == (3, 11, ("a", "b", 0, "c"))
    assert "refers to itself: it is inside the node anchored &x (line 1, column 4)" in err.message


def test_alias_to_an_earlier_anchor_of_the_same_name_inside_a_redefinition_is_itself() -> None:
    # YAML: an alias names the most recent anchor, which here is the node still being built.
    (err,) = errors_of("a: &x 1\nb: &x [*x]\n")
    assert "refers to itself" in err.message and err.line == 2


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
    assert any("document too large (alias expansion): more than 20000 nodes" in e.message for e in errs)


def test_node_limit_without_aliases_does_not_blame_aliases() -> None:
    (err,) = errors_of("a: [" + ", ".join(["1"] * 101) + "]\n", max_nodes=100)
    assert err.message == "document too large: more than 100 nodes (values, lists and mappings)"
    assert err.path == ("a", 97)  # root, key, list and 97 items: the node that passed the limit


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
    text = "".join(" " * i + "k:\n" for i in range(1000))
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
    assert [(e.line, e.col) for e in info.value.errors] == [(1, 7), (1, 8)]
    assert all(e.file == str(bad) and "not valid UTF-8" in e.message for e in info.value.errors)

    with pytest.raises(SpecErrors) as info:
        load_yaml_file(tmp_path / "missing.yaml")
    assert info.value.errors[0].line == 0


# --------------------------------------------------------------------------- encoding


def file_errors(tmp_path: Any, raw: bytes, **limits: int) -> list[SpecError]:
    path = tmp_path / "f.yaml"
    path.write_bytes(raw)
    with pytest.raises(SpecErrors) as info:
        load_yaml_file(path, **limits)
    assert all(e.file == str(path) for e in info.value.errors)
    return info.value.errors


def test_bad_utf8_positions_count_characters_of_the_valid_prefix(tmp_path: Any) -> None:
    raw = "a: 1\nb: ünï\nc: é".encode() + b"\xe9t\xe9\n"
    errs = file_errors(tmp_path, raw)
    assert [(e.line, e.col) for e in errs] == [(3, 5), (3, 7)]  # characters, not bytes: 'é' is one column
    assert errs[0].message.startswith("file is not valid UTF-8: byte 0xE9 (invalid continuation byte)")
    assert "offset" not in errs[0].message


def test_bad_utf8_does_not_hide_other_problems(tmp_path: Any) -> None:
    errs = file_errors(tmp_path, b"a: caf\xe9\nb: 1\na: 2\n")
    assert [(e.line, e.col, e.message.split(":")[0]) for e in errs] == [
        (1, 7, "file is not valid UTF-8"),
        (3, 1, "duplicate key 'a' (first defined at line 1)"),
    ]


def test_truncated_utf8_sequence_at_the_end(tmp_path: Any) -> None:
    (err,) = file_errors(tmp_path, "a: é".encode() + b"\xe2\x82")
    assert (err.line, err.col) == (1, 5) and "0xE2 0x82 (unexpected end of data)" in err.message


@pytest.mark.parametrize(
    "encoding, name",
    [
        ("utf-16-le", "UTF-16 (little-endian)"),
        ("utf-16-be", "UTF-16 (big-endian)"),
        ("utf-32-le", "UTF-32 (little-endian)"),
        ("utf-32-be", "UTF-32 (big-endian)"),
    ],
)
def test_utf16_and_utf32_with_a_bom(tmp_path: Any, encoding: str, name: str) -> None:
    (err,) = file_errors(tmp_path, "\ufeffa: 1\n".encode(encoding))
    assert (err.line, err.col) == (1, 1)
    assert err.message.startswith(f"file is {name} text (it starts with the byte order mark ")
    assert err.message.endswith("save it as UTF-8")


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be", "utf-32-le"])
def test_utf16_without_a_bom(tmp_path: Any, encoding: str) -> None:
    (err,) = file_errors(tmp_path, "suite: x\n".encode(encoding))
    assert (err.line, err.col) == (1, 1) and "looks like UTF-16 or UTF-32" in err.message


def test_a_leading_utf8_bom_is_fine_but_not_one_inside(tmp_path: Any) -> None:
    path = tmp_path / "ok.yaml"
    path.write_bytes("\ufeffa: 1\n".encode())
    assert load_yaml_file(path).data == {"a": 1}
    # Two files pasted together: the second one's BOM would silently become part of the key 'b'.
    (err,) = file_errors(tmp_path, "\ufeffa: 1\n\ufeffb: 2\n".encode())
    assert (err.line, err.col) == (2, 1) and "byte order mark (U+FEFF" in err.message


def test_every_forbidden_character_is_reported_with_line_and_col() -> None:
    errs = errors_of("a: x\x00y\r\nb: \x1b[0m\rc: \x7f\n")
    assert [(e.line, e.col) for e in errs] == [(1, 5), (2, 4), (3, 4)]  # \r\n and \r are line breaks
    assert "NUL character (U+0000)" in errs[0].message
    assert "control character '\\x1b' (U+001B)" in errs[1].message
    assert "(U+007F)" in errs[2].message


def test_forbidden_character_does_not_hide_other_problems() -> None:
    errs = errors_of("a: x\x07\nb: [1\n")
    assert len(errs) == 2 and "control character" in errs[0].message and "YAML syntax error" in errs[1].message


def test_lone_surrogate_in_a_string() -> None:
    (err,) = errors_of("a: \udc80\n")
    assert (err.line, err.col) == (1, 4) and "lone surrogate" in err.message


# --------------------------------------------------------------------------- size caps


def test_file_size_is_checked_before_reading(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import robustspec.spec.yaml_loader as yl

    big = tmp_path / "big.yaml"
    with open(big, "wb") as fh:
        fh.truncate(50 << 20)  # sparse: 50 MB of size, nothing written
    reads: list[int] = []
    real_open = open

    class Watch:
        def __init__(self, fh: Any) -> None:
            self.fh = fh

        def __enter__(self) -> Any:
            return self

        def __exit__(self, *exc: Any) -> None:
            self.fh.close()

        def fileno(self) -> int:
            return self.fh.fileno()

        def read(self, n: int = -1) -> bytes:
            reads.append(n)
            return self.fh.read(n)

    monkeypatch.setattr(yl, "open", lambda *a, **k: Watch(real_open(*a, **k)), raising=False)
    with pytest.raises(SpecErrors) as info:
        load_yaml_file(big)
    (err,) = info.value.errors
    assert reads == []
    assert (err.line, err.col) == (1, 1)
    assert err.message.startswith("file too large: 52428800 bytes, more than the 1048576 (1024 KiB)")

    small = tmp_path / "small.yaml"
    small.write_bytes(b"a: 1\n")
    assert load_yaml_file(small).data == {"a": 1}
    assert reads == [MAX_FILE_BYTES + 1]  # never more than the cap, whatever the size said


def test_file_that_reports_no_size_is_still_capped(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import robustspec.spec.yaml_loader as yl

    path = tmp_path / "pipe-like.yaml"
    path.write_bytes(b"a: " + b"x" * 200 + b"\n")
    real = os.fstat
    monkeypatch.setattr(yl.os, "fstat", lambda fd: os.stat_result((*real(fd)[:6], 0, *real(fd)[7:])))
    with pytest.raises(SpecErrors) as info:
        load_yaml_file(path, max_bytes=100)
    assert "file too large: 101 bytes or more" in info.value.errors[0].message


def test_text_size_cap() -> None:
    (err,) = errors_of("a: 1\n" * 30, max_chars=100)
    assert (err.line, err.col) == (1, 1) and err.message.startswith("file too large: 150 characters")


def test_long_scalar_is_an_error_and_not_echoed() -> None:
    errs = errors_of("a: ok\nb: " + "x" * (MAX_SCALAR_CHARS + 1) + "\nc: [1\n")
    assert [(e.line, e.col, e.path) for e in errs][0] == (2, 4, ("b",))
    assert errs[0].message.startswith(f"a value of {MAX_SCALAR_CHARS + 1} characters is longer than the 65536 allowed")
    assert errs[0].message.endswith(f"...' ({MAX_SCALAR_CHARS + 1} characters)")
    assert len(str(errs[0])) < 200
    assert "YAML syntax error" in errs[1].message  # and the rest of the file is still checked
    quoted = errors_of('a: "' + "y" * 100 + '"\n', max_scalar=99)
    assert "a value of 100 characters" in quoted[0].message


def test_long_key_is_reported_without_it_in_the_path() -> None:
    key = "k" * (MAX_KEY_CHARS + 1)
    err, under = errors_of(f"outer:\n  {key}: {{x: *nope}}\n")
    assert (err.line, err.col, err.path) == (2, 3, ("outer",))
    assert f"a mapping key of {MAX_KEY_CHARS + 1} characters is longer than the 256 allowed" in err.message
    assert len(str(err)) < 200
    assert "k" * 50 not in str(under)  # a problem under it is still reported, without the key


def test_anchored_long_scalar_used_as_a_key_is_reported_once() -> None:
    (err,) = errors_of("a: &v " + "x" * 300 + "\nb: {*v : 1}\n", max_scalar=200)
    assert err.line == 1


def test_number_of_problems_is_capped() -> None:
    errs = errors_of("".join(f"k: {i}\n" for i in range(1000)))
    assert len(errs) == MAX_ERRORS + 1
    assert errs[-1].message.startswith(f"more than {MAX_ERRORS} problems: the rest of the file is not checked")
    many = errors_of("\x07\n" * 500)
    assert len(many) <= MAX_ERRORS + 1


def test_echoed_names_are_shortened() -> None:
    long = "t" * 5000
    for text in (f"a: !{long} x\n", f"a: *{long}\n", f"a: [&{long} 1, *{long}x]\n"):
        for err in errors_of(text):
            assert len(str(err)) < 300, str(err)
    (dup,) = errors_of(f"{'d' * 200}: 1\n{'d' * 200}: 2\n")
    assert "duplicate key 'ddd" in dup.message and "(200 characters)" in dup.message


def test_huge_integer_message_is_short() -> None:
    (err,) = errors_of("a: " + "9" * 6000 + "\n")
    assert err.message.startswith("integer of 6000 digits is too long") and len(err.message) < 100


def test_shorten_and_clip() -> None:
    assert shorten("abc") == "'abc'"
    assert shorten(1.5) == "1.5"
    assert shorten("x" * 500) == "'" + "x" * 79 + "...' (500 characters)"
    assert shorten("x" * 500, limit=10) == "'xxxxxxxxx...' (500 characters)"
    assert shorten(["a"] * 100).endswith("... (500 characters)")
    assert shorten("it's" * 50).startswith("\"it's")  # repr's own quoting is kept
    assert shorten("\x00" * 100).startswith("'\\x00\\x00")  # control characters stay escaped
    assert len(shorten("z" * 10**6)) < 120
    assert clip("short") == "short"
    assert clip("y" * 300) == "y" * 200 + "... (300 characters)"


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
