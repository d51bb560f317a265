"""``robustspec research``: the research's tables and trend verdicts from synthetic results files (no suite runs)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from robustspec.cli import main
from robustspec.report import research as rs
from robustspec.report.research import Comparison, research
from robustspec.report.results import make_document, write_document

EPS = 4 / 255
STEPS = {"FP": {"prune.ratio": 0.5}, "KD": {"distill.student": "resnet18"}, "PTSQ": {"quantize.backend": "x86"}, "": {}}

# (model, variant): parameters, method, accuracy on the targets. Every trend of Table 1 holds clearly here.
TABLE1: dict[tuple[str, str], tuple[float, str, dict[str, float]]] = {
    ("resnet18", "baseline"): (11.18e6, "", {"webcam": 0.60, "dslr": 0.62}),
    ("resnet18", "fp-4.51m"): (4.50e6, "FP", {"webcam": 0.50, "dslr": 0.52}),
    ("resnet18", "int8"): (11.18e6, "PTSQ", {"webcam": 0.60, "dslr": 0.62}),
    ("resnet34", "baseline"): (21.29e6, "", {"webcam": 0.70, "dslr": 0.72}),
    ("resnet34", "fp-11.19m"): (11.15e6, "FP", {"webcam": 0.55, "dslr": 0.57}),
    ("resnet34", "fp-4.51m"): (4.47e6, "FP", {"webcam": 0.40, "dslr": 0.42}),
    ("resnet34", "kd-r18"): (11.18e6, "KD", {"webcam": 0.65, "dslr": 0.67}),
}
# (model, variant): parameters, method, robust accuracy per attack, mode. Every trend of Table 2 holds here.
TABLE2: dict[tuple[str, str], tuple[float, str, dict[str, float], str]] = {
    ("resnet18", "baseline"): (11.18e6, "", {"fgsm": 0.70, "pgd-linf": 0.50}, "white-box"),
    ("resnet18", "fp-4.51m"): (4.50e6, "FP", {"fgsm": 0.40, "pgd-linf": 0.20}, "white-box"),
    ("resnet18", "int8"): (11.18e6, "PTSQ", {"fgsm": 0.70, "pgd-linf": 0.55}, "transfer"),
    ("resnet34", "baseline"): (21.29e6, "", {"fgsm": 0.60, "pgd-linf": 0.40}, "white-box"),
    ("resnet34", "fp-11.19m"): (11.15e6, "FP", {"fgsm": 0.30, "pgd-linf": 0.10}, "white-box"),
    ("resnet34", "kd-r18"): (11.18e6, "KD", {"fgsm": 0.85, "pgd-linf": 0.75}, "white-box"),
}


def _props(model: str, variant: str, params: float, method: str, suite: str) -> dict[str, Any]:
    return {
        "robustspec": "1",
        "suite": suite,
        "model": model,
        "variant": variant,
        "parameters": params,
        "bytes": params * (1 if method == "PTSQ" else 4),
        **STEPS[method],
    }


def make_results(
    table1: dict[Any, Any] | None = None, table2: dict[Any, Any] | None = None, n: int = 1000, n_attack: int = 1000
) -> dict[str, Any]:
    """A results document shaped like a Table 1 + Table 2 run (amazon source, webcam and dslr targets)."""
    items = []
    for (model, variant), (params, method, acc) in (TABLE1 if table1 is None else table1).items():
        props = _props(model, variant, params, method, "table1")
        props.update({"accuracy[amazon]": 0.99, **{f"accuracy[{d}]": v for d, v in acc.items()}})
        prefix = f"suites/table1.yaml::{model}::{variant}::"
        items.append(
            {
                "id": prefix + "source-accuracy",
                "status": "pass",
                "properties": {**props, "check": "source-accuracy", "domain": "", "measured": 0.99, "n": n},
            }
        )
        for d, v in acc.items():
            items.append(
                {
                    "id": prefix + f"target-accuracy[{d}]",
                    "status": "pass",
                    "properties": {**props, "check": "target-accuracy", "domain": d, "measured": v, "n": n},
                }
            )
    for (model, variant), (params, method, attacks, mode) in (TABLE2 if table2 is None else table2).items():
        props = _props(model, variant, params, method, "table2")
        for attack, robust in attacks.items():
            items.append(
                {
                    "id": f"suites/table2.yaml::{model}::{variant}::attack[{attack}]",
                    "status": "pass",
                    "properties": {
                        **props,
                        "check": "attack",
                        "domain": attack,
                        "attack": attack,
                        "attack_mode": mode,
                        "eps": EPS,
                        "n": n_attack,
                        "clean_accuracy": 0.99,
                        "robust_accuracy": robust,
                        "measured": robust,
                    },
                }
            )
    return make_document(items, {"python": "3"}, "abc123")


def verdicts(doc: dict[str, Any]) -> dict[str, str]:
    return {t.key: t.verdict for t in research(doc).trends}


def trend(doc: dict[str, Any], key: str) -> rs.Trend:
    return next(t for t in research(doc).trends if t.key == key)


def with_acc(model: str, variant: str, webcam: float, dslr: float) -> Callable[[dict[Any, Any]], None]:
    def change(t1: dict[Any, Any]) -> None:
        params, method, _ = t1[(model, variant)]
        t1[(model, variant)] = (params, method, {"webcam": webcam, "dslr": dslr})

    return change


def with_attacks(model: str, variant: str, fgsm: float, pgd: float) -> Callable[[dict[Any, Any]], None]:
    def change(t2: dict[Any, Any]) -> None:
        params, method, _, mode = t2[(model, variant)]
        t2[(model, variant)] = (params, method, {"fgsm": fgsm, "pgd-linf": pgd}, mode)

    return change


# --- the tables ----------------------------------------------------------------------------------------


def test_table1_in_the_research_layout() -> None:
    r = research(make_results())
    assert r.source == "amazon" and r.targets == ["webcam", "dslr"]
    # Per model: baseline, FP largest first, KD, PTSQ; models by size.
    assert [(x.model, x.variant, x.method) for x in r.table1_rows] == [
        ("resnet18", "baseline", "-"),
        ("resnet18", "fp-4.51m", "FP"),
        ("resnet18", "int8", "PTSQ"),
        ("resnet34", "baseline", "-"),
        ("resnet34", "fp-11.19m", "FP"),
        ("resnet34", "fp-4.51m", "FP"),
        ("resnet34", "kd-r18", "KD (resnet18)"),
    ]
    text = rs.render_text(r)
    lines = text.splitlines()
    head = next(line for line in lines if line.startswith("model "))
    assert "amazon (source)" in head and "amazon→webcam" in head and "amazon→dslr" in head
    kd = next(line for line in lines if "kd-r18" in line and "KD (resnet18)" in line)
    assert kd.split()[-5:] == ["11.18", "44.7", "99.0", "65.0", "67.0"]
    assert "n = 1000 images per domain" in text


def test_table2_notes_mode_and_budget() -> None:
    r = research(make_results())
    assert r.attacks == ["pgd-linf", "fgsm"]  # the research's column order
    text = rs.render_text(r)
    head = next(line for line in text.splitlines() if line.startswith("model ") and "clean" in line)
    assert "pgd-linf (ε 4/255)" in head and "fgsm (ε 4/255)" in head and head.rstrip().endswith("mode")
    int8 = next(line for line in text.splitlines() if "PTSQ" in line and "transfer" in line)
    assert int8.split()[-3:] == ["55.0", "70.0", "transfer"]
    md = rs.render_markdown(r)
    assert "| model | variant | method |" in md and "| transfer |" in md and "## Trends" in md


def test_chains_are_neither_fp_nor_ptsq() -> None:
    t1 = dict(TABLE1)
    t1[("resnet18", "fp-int8")] = (4.5e6, "FP", {"webcam": 0.9, "dslr": 0.9})
    doc = make_results(t1)
    for item in doc["items"]:
        item["properties"]["eval_key[amazon+blur@0.5]"] = "eval-1"  # a dot, but not a compression step
        if item["properties"]["variant"] == "fp-int8":
            item["properties"]["quantize.backend"] = "x86"
    r = research(doc)
    assert next(x for x in r.rows if x.variant == "fp-int8").method == "FP + PTSQ"
    assert {x.method for x in r.rows} == {"-", "FP", "PTSQ", "KD (resnet18)", "FP + PTSQ"}
    assert verdicts(doc)["pruning-depth"] == "holds"  # its 0.9 would contradict if it counted as FP


# --- every verdict follows the numbers -----------------------------------------------------------------


def test_every_trend_holds_on_the_reference_numbers() -> None:
    assert set(verdicts(make_results()).values()) == {"holds"}


FLIPS1 = {
    "pruning-depth": [
        with_acc("resnet18", "fp-4.51m", 0.70, 0.72),
        with_acc("resnet34", "fp-11.19m", 0.80, 0.82),
        with_acc("resnet34", "fp-4.51m", 0.90, 0.92),
    ],
    "kd-vs-fp": [with_acc("resnet34", "kd-r18", 0.45, 0.47)],
    "smaller-original": [with_acc("resnet34", "fp-4.51m", 0.60, 0.62), with_acc("resnet34", "fp-11.19m", 0.70, 0.72)],
    "int8-keeps-accuracy": [with_acc("resnet18", "int8", 0.50, 0.52)],
    "deeper-baseline": [with_acc("resnet34", "baseline", 0.50, 0.52)],
}
FLIPS2 = {
    "pruned-vulnerable": [
        with_attacks("resnet18", "fp-4.51m", 0.80, 0.60),
        with_attacks("resnet34", "fp-11.19m", 0.70, 0.50),
    ],
    "kd-robust-vs-fp": [with_attacks("resnet34", "kd-r18", 0.20, 0.05)],
    "kd-robust-vs-baseline": [with_attacks("resnet34", "kd-r18", 0.50, 0.30)],
    "pgd-vs-fgsm": [with_attacks(m, v, 0.10, 0.90) for m, v in TABLE2],
}


@pytest.mark.parametrize("key", [*FLIPS1, *FLIPS2])
def test_flipping_the_numbers_flips_the_verdict(key: str) -> None:
    t1, t2 = copy.deepcopy(TABLE1), copy.deepcopy(TABLE2)
    for change in FLIPS1.get(key, []):
        change(t1)
    for change in FLIPS2.get(key, []):
        change(t2)
    t = trend(make_results(t1, t2), key)
    assert t.verdict == "does not hold", [c.describe() for c in t.comparisons]
    assert all(c.outcome == "contradicts" for c in t.comparisons)


def test_half_flipped_is_mixed() -> None:
    t1 = copy.deepcopy(TABLE1)
    with_acc("resnet18", "fp-4.51m", 0.70, 0.72)(t1)  # ResNet-18's pruned model beats its baseline; ResNet-34's do not
    t = trend(make_results(t1), "pruning-depth")
    assert t.verdict == "mixed" and t.counts["supports"] == 4 and t.counts["contradicts"] == 2


def test_small_differences_are_within_noise() -> None:
    t1 = copy.deepcopy(TABLE1)
    with_acc("resnet34", "kd-r18", 0.57, 0.59)(t1)  # 2 points over FP on 100 images each
    t = trend(make_results(t1, n=100), "kd-vs-fp")
    assert t.verdict == "within noise" and t.counts["within noise"] == 2
    line = t.comparisons[0].describe()
    assert "kd-r18 57.0 vs fp-11.19m 55.0" in line and "Δ +2.0" in line and "95% CI [" in line
    assert line.endswith("within noise")
    # The same 2 points on 100 000 images are a real difference.
    assert trend(make_results(t1, n=100_000), "kd-vs-fp").verdict == "holds"


def test_one_clear_comparison_among_many_noisy_is_within_noise() -> None:
    t = rs.Trend(
        "x",
        "claim",
        "test",
        [Comparison("a", "a", 0.9, 1000, "b", 0.5, 1000)]
        + [Comparison("a", "a", 0.51, 100, "b", 0.50, 100) for _ in range(3)],
    )
    assert t.counts["supports"] == 1 and t.verdict == "within noise"
    assert rs.Trend("x", "claim", "test").verdict == "not measured"


def test_int8_tolerance() -> None:
    t1 = copy.deepcopy(TABLE1)
    with_acc("resnet18", "int8", 0.595, 0.615)(t1)  # half a point: kept
    assert trend(make_results(t1), "int8-keeps-accuracy").verdict == "holds"
    with_acc("resnet18", "int8", 0.57, 0.59)(t1)  # 3 points on 100 images: could be noise
    t = trend(make_results(t1, n=100), "int8-keeps-accuracy")
    assert t.verdict == "within noise" and "drop +3.0" in t.comparisons[0].describe()
    with_acc("resnet18", "int8", 0.64, 0.66)(t1)  # a gain keeps accuracy too
    assert trend(make_results(t1, n=100), "int8-keeps-accuracy").verdict == "holds"


def test_comparison_without_n_uses_the_point_estimate() -> None:
    c = Comparison("x", "a", 0.6, None, "b", 0.5, None)
    assert c.outcome == "supports" and "n unknown" in c.describe()
    assert Comparison("x", "a", 0.4, None, "b", 0.5, 200).outcome == "contradicts"


def test_not_measured_when_the_suites_lack_the_models() -> None:
    v = verdicts(make_results(table2={}))
    assert {k: v[k] for k in FLIPS2} == dict.fromkeys(FLIPS2, "not measured")
    assert "Table 2: no attack items" in rs.render_text(research(make_results(table2={})))
    t2 = {k: v for k, v in TABLE2.items() if k != ("resnet34", "fp-11.19m")}
    t = trend(make_results(table2=t2), "kd-robust-vs-fp")
    assert t.verdict == "not measured" and "resnet18 fp-4.51m 4.50M" in t.note
    # At equal size but from another model: not the research's comparison (its clean accuracy differs).
    t2 = copy.deepcopy(TABLE2)
    t2[("resnet18", "fp-11.19m")] = (11.17e6, "FP", {"fgsm": 0.95, "pgd-linf": 0.95}, "white-box")
    del t2[("resnet34", "fp-11.19m")]
    assert trend(make_results(table2=t2), "kd-robust-vs-fp").verdict == "not measured"


def test_a_different_eps_is_not_compared() -> None:
    doc = make_results()
    for item in doc["items"]:
        if item["properties"].get("attack") == "pgd-linf":
            item["properties"]["eps"] = 8 / 255
    assert verdicts(doc)["pgd-vs-fgsm"] == "not measured"


# --- the command ---------------------------------------------------------------------------------------


def test_cli_reads_a_results_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "results.json"
    write_document(path, make_results())
    out_md = tmp_path / "out" / "research.md"
    assert main(["research", "--results", str(path), "-o", str(out_md)]) == 0
    captured = capsys.readouterr()
    assert "Table 1" in captured.out and "Table 2" in captured.out and "— HOLDS" in captured.out
    assert out_md.read_text(encoding="utf-8").startswith("# The research's tables")


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["research", "--results", "no/such/file.json"], "no such file"),
        (["research", "--results", "x.json", "--deep"], "--results reads an existing results file"),
        (["research", "--bogus"], "unrecognized arguments"),
    ],
    ids=["missing-results", "results-with-deep", "unknown-option"],
)
def test_cli_usage_errors(argv: list[str], fragment: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert fragment in err and "Traceback" not in err


def test_cli_without_suites_in_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["research"]) == 2
    assert "no suites/table1.yaml, suites/table2.yaml in the current directory" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("flags", "suites"),
    [
        ([], ["suites/table1.yaml", "suites/table2.yaml"]),
        (["--deep", "--full"], ["suites/table1.yaml", "suites/extra/table1-deep.yaml", "suites/extra/table2.yaml"]),
    ],
    ids=["default", "deep-full"],
)
def test_cli_runs_pytest_with_the_suites(
    flags: list[str],
    suites: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for s in ("table1.yaml", "table2.yaml", "extra/table1-deep.yaml", "extra/table2.yaml"):
        (tmp_path / "suites" / s).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "suites" / s).write_text("# a suite\n")
    monkeypatch.chdir(tmp_path)
    seen: list[list[str]] = []

    def fake_run(cmd: list[str], cwd: Path | None = None) -> int:
        seen.append(cmd)
        write_document(Path(cmd[cmd.index("--robustspec-results") + 1]), make_results())
        return 1  # a failed check: the tables still print, the status says so

    monkeypatch.setattr(rs, "run_suites", fake_run)
    assert main(["research", "-n", "2", "--store", "/tmp/some-store", *flags]) == 1
    [cmd] = seen
    assert cmd[1:3] == ["-m", "pytest"] and cmd[3 : 3 + len(suites)] == suites
    assert cmd[cmd.index("-n") + 1] == "2" and cmd[cmd.index("--robustspec-store") + 1] == "/tmp/some-store"
    captured = capsys.readouterr()
    assert "Trends of the research" in captured.out and "some checks failed" in captured.err


def test_int8_attacked_white_box_is_a_row_of_its_own() -> None:
    doc = make_results()
    extra = []
    for item in doc["items"]:
        p = item["properties"]
        if p.get("check") == "attack" and p["variant"] == "int8":
            robust = p["robust_accuracy"] - 0.3  # white-box through the fake-quant copy: far less robust
            extra.append(
                {
                    "id": item["id"].replace("]", ",white-box]"),
                    "status": "pass",
                    "properties": {
                        **p,
                        "domain": p["domain"] + ",white-box",
                        "robust_accuracy": robust,
                        "measured": robust,
                        "attack_mode": "white-box (fake-quant surrogate)",
                    },
                }
            )
    doc["items"] += extra
    r = research(doc)
    int8 = [x for x in r.table2_rows if x.variant == "int8"]
    assert [(x.mode, x.attacks["fgsm"].robust) for x in int8] == [("", 0.70), ("white-box", pytest.approx(0.40))]
    assert r.attacks == ["pgd-linf", "fgsm"]  # no column per mode
    text = rs.render_text(r)
    assert text.count("PTSQ") >= 3 and "white-box (fake-quant surrogate)" in text
    v = verdicts(doc)
    # Transfer: int8 0.70/0.55 against the baseline's 0.70/0.50 (one tie, one clear gain); white-box: 0.30 less.
    assert v["int8-robust[transfer]"] == "holds"
    assert v["int8-robust[white-box (fake-quant surrogate)]"] == "does not hold"
    assert v["pruned-vulnerable"] == "holds" and v["pgd-vs-fgsm"] == "holds"
