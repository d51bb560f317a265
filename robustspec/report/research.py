"""``robustspec research``: the research's Table 1 and Table 2 from a results file, and which of its trends
hold on those numbers.

The tables are laid out as in the research (Shen et al., "Robustness to Distribution Shifts of Compressed
Networks for Edge Devices"): rows model / compression / parameters; Table 1 has accuracy per domain (source
first, then each target), Table 2 clean accuracy and robust accuracy per attack with the attack mode.

Every trend is a list of pairwise comparisons computed from the numbers. Each comparison is judged with
Newcombe's 95 % interval for the difference of two proportions: the paired one
(:func:`robustspec.stats.newcombe_paired_difference`) when the results file recorded both sides' per-image
outcomes on the same images (``outcomes[<domain>]``, an attack item's ``outcomes``), else the one for
independent samples (:func:`robustspec.stats.newcombe_difference`, with the recorded ``n``). A comparison
*supports* the trend when the interval lies on the trend's side of zero, *contradicts* it when it lies on
the other side, and is *within noise* otherwise.
A trend then

- **holds** when no comparison contradicts it and at least as many support it as are within noise,
- **does not hold** in the mirror case (none supports it, at least as many contradict as are within noise),
- is **mixed** when some comparisons support it and others contradict it,
- is **within noise** otherwise (mostly within noise), and **not measured** when the results have none.

Nothing is hard-coded: a different results file gives different verdicts. Nothing here imports torch.
"""

from __future__ import annotations

import itertools
import math
import subprocess
import sys
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..outcomes import paired_counts
from ..stats import newcombe_difference, newcombe_paired_difference
from .results import domain_accuracies
from .results import finite_number as _num

__all__ = [
    "CONFIDENCE",
    "DEEP_SUITE",
    "FULL_TABLE2_SUITE",
    "INT8_TOLERANCE",
    "SIZE_TOLERANCE",
    "TABLE1_SUITE",
    "TABLE2_SUITE",
    "AttackCell",
    "Comparison",
    "Research",
    "Row",
    "Trend",
    "pytest_command",
    "render_markdown",
    "render_text",
    "research",
    "run_suites",
    "suite_paths",
]

TABLE1_SUITE = Path("suites/table1.yaml")
TABLE2_SUITE = Path("suites/table2.yaml")
DEEP_SUITE = Path("suites/extra/table1-deep.yaml")
FULL_TABLE2_SUITE = Path("suites/extra/table2.yaml")

#: Confidence of the intervals that decide "within noise".
CONFIDENCE = 0.95
#: Two models are "of about equal size" when their parameter counts differ by at most this fraction.
SIZE_TOLERANCE = 0.05
#: int8 "keeps accuracy" when it loses at most this much (absolute) against its float parent.
INT8_TOLERANCE = 0.01

BASELINE = "baseline"
#: Compression steps by the prefix of the properties they record, and the research's name for them.
_METHODS = {"prune": "FP", "distill": "KD", "quantize": "PTSQ"}
_KIND_ORDER = {"": 0, "FP": 1, "KD": 2, "PTSQ": 3}
#: Where an attack without an ``order`` (robustspec.attacks.base.Attack), or no longer registered, goes.
_LAST = 100

SUPPORTS, CONTRADICTS, NOISE = "supports", "contradicts", "within noise"
HOLDS, DOES_NOT_HOLD, MIXED, WITHIN_NOISE, NOT_MEASURED = (
    "holds",
    "does not hold",
    "mixed",
    "within noise",
    "not measured",
)


# --- the data ------------------------------------------------------------------------------------------


@dataclass
class AttackCell:
    """Accuracy of one model under one attack, on ``n`` images of the source domain."""

    robust: float
    clean: float | None
    n: int | None
    mode: str | None
    eps: float | None
    attack: str
    outcomes: str | None = None  # per image robust or not (robustspec.outcomes), when recorded


@dataclass
class Row:
    """One model and variant: size, method, accuracy per domain, accuracy under each attack."""

    model: str
    variant: str
    steps: list[str] = field(default_factory=list)  # "FP", "KD", "PTSQ", ... in chain order
    student: str | None = None
    parameters: float | None = None
    bytes: float | None = None
    accuracy: dict[str, float] = field(default_factory=dict)
    n: dict[str, int] = field(default_factory=dict)  # per domain, when an item recorded it
    outcomes: dict[str, str] = field(default_factory=dict)  # per domain, per image right or wrong, when recorded
    attacks: dict[str, AttackCell] = field(default_factory=dict)
    in_table1: bool = False
    #: A non-default attack mode from the item ids (``attack[pgd-linf,white-box]``): a row of its own in Table 2.
    mode: str = ""

    @property
    def method(self) -> str:
        """The research's label: "-" (baseline), "FP", "KD (resnet18)", "PTSQ", "FP + PTSQ"."""
        if self.variant == BASELINE:
            return "-"
        if not self.steps:
            return self.variant
        return " + ".join(f"KD ({self.student})" if s == "KD" and self.student else s for s in self.steps)

    @property
    def kind(self) -> str:
        """ "" for the baseline, the single method of a one-step variant, "+"-joined for chains."""
        return "" if self.variant == BASELINE else "+".join(self.steps) or self.variant

    @property
    def variant_label(self) -> str:
        return f"{self.variant} [{self.mode}]" if self.mode else self.variant

    def label(self) -> str:
        return f"{self.model} {self.variant_label}"


@dataclass
class Comparison:
    """One pairwise test: the trend expects ``a`` above ``b`` (or, with ``tolerance``, ``b`` at most that
    far below ``a``)."""

    what: str  # e.g. "resnet34 webcam"
    a_label: str
    a: float
    n_a: int | None
    b_label: str
    b: float
    n_b: int | None
    tolerance: float | None = None
    #: (both right, only a, only b, neither) when a and b were measured on the same images: paired interval.
    pairs: tuple[int, int, int, int] | None = None
    low: float | None = None
    high: float | None = None
    outcome: str = NOISE

    def __post_init__(self) -> None:
        diff = self.a - self.b
        if self.pairs is not None:
            self.low, self.high = newcombe_paired_difference(*self.pairs, CONFIDENCE)
        elif self.n_a and self.n_b:
            self.low, self.high = newcombe_difference(
                round(self.a * self.n_a), self.n_a, round(self.b * self.n_b), self.n_b, CONFIDENCE
            )
        if self.tolerance is not None:
            # "b keeps a's accuracy": within the tolerance by the point estimate supports; a loss beyond it
            # contradicts only when the interval excludes no loss at all.
            if diff <= self.tolerance:
                self.outcome = SUPPORTS
            elif self.low is None or self.low > 0:
                self.outcome = CONTRADICTS
            else:
                self.outcome = NOISE
            return
        if self.low is None or self.high is None:  # no n: the point estimate decides
            self.outcome = SUPPORTS if diff > 0 else CONTRADICTS if diff < 0 else NOISE
        elif self.low > 0:
            self.outcome = SUPPORTS
        elif self.high < 0:
            self.outcome = CONTRADICTS
        else:
            self.outcome = NOISE

    @property
    def diff(self) -> float:
        return self.a - self.b

    def describe(self) -> str:
        if self.tolerance is not None:
            text = (
                f"{self.what}: {self.b_label} {_pct(self.b)} vs {self.a_label} {_pct(self.a)} (drop {_pts(self.diff)}"
            )
        else:
            text = f"{self.what}: {self.a_label} {_pct(self.a)} vs {self.b_label} {_pct(self.b)} (Δ {_pts(self.diff)}"
        if self.low is not None and self.high is not None:
            kind = "paired CI" if self.pairs is not None else "CI"
            text += f", {CONFIDENCE:.0%} {kind} [{_pts(self.low)}, {_pts(self.high)}]"
        else:
            text += ", n unknown: not tested against noise"
        return text + f"): {self.outcome}"


@dataclass
class Trend:
    """One claim of the research, the test applied to our numbers, and the verdict they give."""

    key: str  # a stable name: "pruning-depth", "kd-vs-fp", ...
    claim: str
    test: str
    comparisons: list[Comparison] = field(default_factory=list)
    note: str = ""

    @property
    def counts(self) -> Counter[str]:
        return Counter(c.outcome for c in self.comparisons)

    @property
    def verdict(self) -> str:
        c = self.counts
        if not self.comparisons:
            return NOT_MEASURED
        if c[SUPPORTS] and c[CONTRADICTS]:
            return MIXED
        # One clear comparison among many within noise is not enough to call it either way.
        if c[SUPPORTS] and c[SUPPORTS] >= c[NOISE]:
            return HOLDS
        if c[CONTRADICTS] and c[CONTRADICTS] >= c[NOISE]:
            return DOES_NOT_HOLD
        return WITHIN_NOISE

    def tally(self) -> str:
        if not self.comparisons:
            return "no comparison possible"
        c = self.counts
        return (
            f"{len(self.comparisons)} comparison{'s' if len(self.comparisons) != 1 else ''}: "
            f"{c[SUPPORTS]} support, {c[CONTRADICTS]} contradict, {c[NOISE]} within noise"
        )


@dataclass
class Research:
    """Both tables and the trends, from one results document."""

    source: str | None
    targets: list[str]
    attacks: list[str]
    rows: list[Row]
    trends: list[Trend]
    failed: int = 0

    @property
    def table1_rows(self) -> list[Row]:
        return [r for r in self.rows if r.in_table1]

    @property
    def table2_rows(self) -> list[Row]:
        return [r for r in self.rows if r.attacks]


def _int(v: Any) -> int | None:
    x = _num(v)
    return int(x) if x is not None and x > 0 else None


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.1f}"


def _pts(v: float) -> str:
    return f"{100 * v:+.1f}"


def _mparams(v: float | None) -> str:
    return "-" if v is None else f"{v / 1e6:.2f}M"


# --- reading the results -------------------------------------------------------------------------------


def _attack_order(name: str) -> int:
    """The attack's ``order`` class variable; an attack that is not registered (here) goes last."""
    from ..attacks import ATTACKS

    return int(getattr(ATTACKS.get(name), "order", _LAST)) if name in ATTACKS else _LAST


def _attack_column(item: Mapping[str, Any], domain: str) -> str:
    """The attack's name; a second expectation of the same attack (another eps) gets "#2", as in the report."""
    name = domain or "attack"
    last = str(item.get("id", "")).rsplit("::", 1)[-1]
    if last.startswith("attack#"):
        name += " #" + last[len("attack#") :].split("[", 1)[0]
    return name


def _collect(doc: Mapping[str, Any]) -> tuple[dict[tuple[str, str, str], Row], list[str], list[str], list[str], int]:
    rows: dict[tuple[str, str, str], Row] = {}
    domains: list[str] = []
    targets: list[str] = []
    attacks: list[str] = []
    failed = 0
    for item in doc.get("items", []):
        props = item.get("properties", {}) or {}
        model, variant = (
            str(props.get("model") or item.get("model") or ""),
            str(props.get("variant") or item.get("variant") or ""),
        )
        if not model or not variant:
            continue
        if item.get("status") in ("fail", "error"):
            failed += 1
        check = str(props.get("check") or "")
        domain = str(props.get("domain") or "")
        mode = ""
        if check == "attack" and "," in domain:  # "pgd-linf,white-box": the attack in a non-default mode
            domain, mode = domain.split(",", 1)
        row = rows.setdefault((model, variant, mode), Row(model, variant, mode=mode))
        for key in ("parameters", "bytes"):
            if _num(props.get(key)) is not None:
                setattr(row, key, _num(props[key]))
        for d, acc in domain_accuracies(props).items():
            row.accuracy[d] = acc
            if d not in domains:
                domains.append(d)
            if isinstance(props.get(f"outcomes[{d}]"), str):
                row.outcomes[d] = props[f"outcomes[{d}]"]
        for k in props:
            if "." in k and "[" not in k:  # "prune.ratio", "quantize.backend": the chain's steps, in order
                step = k.split(".", 1)[0]
                method = _METHODS.get(step, step)
                if method not in row.steps:
                    row.steps.append(method)
        if props.get("distill.student"):
            row.student = str(props["distill.student"])
        if check == "attack":
            robust = _num(props.get("robust_accuracy", props.get("measured")))
            if robust is None:
                continue
            name = _attack_column(item, domain)
            row.attacks[name] = AttackCell(
                robust=robust,
                clean=_num(props.get("clean_accuracy")),
                n=_int(props.get("n")),
                mode=str(props["attack_mode"]) if props.get("attack_mode") else None,
                eps=_num(props.get("eps")),
                attack=str(props.get("attack") or name),
                outcomes=props["outcomes"] if isinstance(props.get("outcomes"), str) else None,
            )
            if name not in attacks:
                attacks.append(name)
            continue
        row.in_table1 = True
        if check == "target-accuracy" and domain and domain not in targets:
            targets.append(domain)
        n = _int(props.get("n"))
        if n and check in ("source-accuracy", "target-accuracy"):
            row.n[domain or "<source>"] = n
    return rows, domains, targets, attacks, failed


def research(doc: Mapping[str, Any]) -> Research:
    """Tables and trends of a results document (any suites: rows are what its items measured)."""
    by_key, domains, targets, attacks, failed = _collect(doc)
    if not targets:
        targets = domains[1:]
    others = [d for d in domains if d not in targets]
    source = others[0] if others else None
    targets = [d for d in domains if d in targets] + [d for d in targets if d not in domains]

    # n per domain: the test split is one size for every model, so a domain's usual n fills the gaps.
    usual: dict[str, Counter[int]] = {}
    for row in by_key.values():
        if "<source>" in row.n:
            n = row.n.pop("<source>")
            if source:
                row.n.setdefault(source, n)
        for d, n in row.n.items():
            usual.setdefault(d, Counter())[n] += 1
    for row in by_key.values():
        for d in row.accuracy:
            if d not in row.n and usual.get(d):
                row.n[d] = usual[d].most_common(1)[0][0]

    # Models by the size of their baseline (ResNet-18 before ResNet-101, whatever order the items came in).
    size: dict[str, float] = {}
    for (model, _, _), row in by_key.items():
        size[model] = max(size.get(model, 0.0), row.parameters or 0.0)
    for (model, variant, mode), row in by_key.items():
        if variant == BASELINE and not mode and row.parameters:
            size[model] = row.parameters
    models = sorted(size, key=lambda m: (size[m], m))
    # Within a model: baseline, FP by size (largest first), KD, PTSQ, then chains, as in the research.
    rows = sorted(
        by_key.values(),
        key=lambda r: (models.index(r.model), _KIND_ORDER.get(r.kind, 9), -(r.parameters or 0), r.variant, r.mode),
    )
    # The research's column order (each attack's ``order``); ties by name; "pgd-linf #2" after "pgd-linf".
    names = sorted(
        attacks,
        key=lambda n: (
            _attack_order(n.split(" #")[0]),
            n.split(" #")[0],
            int(n.split(" #")[1]) if " #" in n else 1,
        ),
    )
    result = Research(source, targets, names, rows, [], failed)
    result.trends = trends(result)
    return result


# --- the trends ----------------------------------------------------------------------------------------


def _same_size(a: Row, b: Row) -> bool:
    if not a.parameters or not b.parameters:
        return False
    return abs(a.parameters - b.parameters) <= SIZE_TOLERANCE * max(a.parameters, b.parameters)


def _baselines(rows: Iterable[Row]) -> dict[str, Row]:
    return {r.model: r for r in rows if r.variant == BASELINE and not r.mode}


def _acc_pair(what: str, a: Row, b: Row, domain: str, **kw: Any) -> Comparison | None:
    if domain not in a.accuracy or domain not in b.accuracy:
        return None
    same = a.model == b.model
    return Comparison(
        what,
        a.variant_label if same else a.label(),
        a.accuracy[domain],
        a.n.get(domain),
        b.variant_label if same else b.label(),
        b.accuracy[domain],
        b.n.get(domain),
        pairs=paired_counts(a.outcomes.get(domain), b.outcomes.get(domain)),
        **kw,
    )


def _attack_pair(what: str, a: Row, b: Row, attack: str) -> Comparison | None:
    ca, cb = a.attacks.get(attack), b.attacks.get(attack)
    if ca is None or cb is None:
        return None
    same = a.model == b.model
    return Comparison(
        what,
        a.variant_label if same else a.label(),
        ca.robust,
        ca.n,
        b.variant_label if same else b.label(),
        cb.robust,
        cb.n,
        pairs=paired_counts(ca.outcomes, cb.outcomes),
    )


def _add(trend: Trend, c: Comparison | None) -> None:
    if c is not None:
        trend.comparisons.append(c)


def trends(r: Research) -> list[Trend]:
    t1 = r.table1_rows
    # Rows of a non-default attack mode (int8 attacked white-box) join only the per-row PGD/FGSM trend.
    t2 = [x for x in r.table2_rows if not x.mode]
    base1, base2 = _baselines(t1), _baselines(t2)
    out: list[Trend] = []
    tgt = ", ".join(r.targets) or "the target domains"

    # 1. Deeper pruning loses more target accuracy.
    t = Trend(
        "pruning-depth",
        "As the compression ratio increases, pruned models lose more target-domain accuracy.",
        f"per model, the baseline and its FP variants ordered by parameter count: each smaller model "
        f"should be less accurate than the next larger one, on {tgt}.",
    )
    for model, base in base1.items():
        chain = [base] + sorted(
            (x for x in t1 if x.model == model and x.kind == "FP"), key=lambda x: -(x.parameters or 0)
        )
        for big, small in itertools.pairwise(chain):
            for d in r.targets:
                _add(t, _acc_pair(f"{model} {d}", big, small, d))
    out.append(t)

    # 2. KD beats FP at equal size.
    t = Trend(
        "kd-vs-fp",
        "Distilled (KD) students keep more target-domain accuracy than pruned (FP) models of the same size.",
        f"each KD variant against the FP variants of the same model within {SIZE_TOLERANCE:.0%} of its "
        f"parameter count, on {tgt}.",
    )
    for kd in (x for x in t1 if x.kind == "KD"):
        for fp in (x for x in t1 if x.kind == "FP" and x.model == kd.model and _same_size(x, kd)):
            for d in r.targets:
                _add(t, _acc_pair(f"{kd.model} {_mparams(kd.parameters)} {d}", kd, fp, d))
    out.append(t)

    # 3. Compressed from a smaller original generalises better at equal size.
    t = Trend(
        "smaller-original",
        "At equal size, a network from a smaller original generalises better than one pruned from a larger original.",
        f"baselines and FP variants grouped by parameter count (within {SIZE_TOLERANCE:.0%}), ordered by "
        f"the size of the baseline they come from: each should beat the one from the next larger "
        f"baseline, on {tgt}.",
    )
    pool = [x for x in t1 if x.parameters and (x.kind == "FP" or x.variant == BASELINE) and x.model in base1]
    for group in _size_groups(pool):
        if len({x.model for x in group}) < 2:
            continue
        group.sort(key=lambda x: base1[x.model].parameters or 0)
        size = sum(x.parameters or 0 for x in group) / len(group)
        for small, big in itertools.pairwise(group):
            if small.model == big.model:
                continue
            for d in r.targets:
                _add(t, _acc_pair(f"≈{_mparams(size)} {d}", small, big, d))
    out.append(t)

    # 4. int8 keeps accuracy.
    t = Trend(
        "int8-keeps-accuracy",
        "Quantized (int8 PTSQ) networks keep their float parent's accuracy on the target domains.",
        f"each PTSQ variant against its baseline on {tgt}: a drop of at most {100 * INT8_TOLERANCE:.0f} "
        f"point supports; a larger drop contradicts only when the interval excludes no drop.",
        note="the research saw int8 gain target accuracy for some models; a gain counts as keeping it.",
    )
    for q in (x for x in t1 if x.kind == "PTSQ"):
        base = base1.get(q.model)
        if base is None:
            continue
        for d in r.targets:
            _add(t, _acc_pair(f"{q.model} {d}", base, q, d, tolerance=INT8_TOLERANCE))
    out.append(t)

    # 5. Deeper baselines are more accurate.
    t = Trend(
        "deeper-baseline",
        "Deeper (larger) baselines are more accurate on the target domains.",
        f"baselines ordered by parameter count: each should beat the next smaller one, on {tgt}.",
    )
    chain = sorted(base1.values(), key=lambda x: x.parameters or 0)
    for small, big in itertools.pairwise(chain):
        for d in r.targets:
            _add(t, _acc_pair(d, big, small, d))
    out.append(t)

    # 6. Pruned models are more vulnerable to attacks.
    t = Trend(
        "pruned-vulnerable",
        "Pruned (FP) models are more vulnerable to adversarial attacks than their baseline.",
        "each FP variant's robust accuracy against its baseline's, under every attack both ran.",
    )
    for fp in (x for x in t2 if x.kind == "FP"):
        base = base2.get(fp.model)
        if base is None:
            continue
        for a in r.attacks:
            _add(t, _attack_pair(f"{fp.model} {a}", base, fp, a))
    out.append(t)

    # 7. KD students are more robust than FP models at equal size.
    t = Trend(
        "kd-robust-vs-fp",
        "Distilled (KD) students are more robust to attacks than pruned (FP) models of the same size.",
        f"each KD variant against the FP variants of the same model within {SIZE_TOLERANCE:.0%} of its "
        "parameter count (as for accuracy), under every attack both ran.",
    )
    kds = [x for x in t2 if x.kind == "KD"]
    fps = [x for x in t2 if x.kind == "FP"]
    for kd in kds:
        for fp in (x for x in fps if x.model == kd.model and _same_size(x, kd)):
            for a in r.attacks:
                _add(t, _attack_pair(f"{kd.model} {a}", kd, fp, a))
    if not t.comparisons and kds:
        t.note = "no FP variant of a KD student's model within {:.0%} of its size was attacked (KD: {}; FP: {})".format(
            SIZE_TOLERANCE,
            ", ".join(f"{x.label()} {_mparams(x.parameters)}" for x in kds),
            ", ".join(f"{x.label()} {_mparams(x.parameters)}" for x in fps) or "none",
        )
    out.append(t)

    # 7b. KD students against the same architecture trained directly.
    t = Trend(
        "kd-robust-vs-baseline",
        "Distilled (KD) students are more robust to attacks than a baseline of the same size trained directly.",
        f"each KD variant against every baseline within {SIZE_TOLERANCE:.0%} of its parameter count, under "
        "every attack both ran.",
    )
    for kd in kds:
        for base in (x for x in base2.values() if _same_size(x, kd)):
            for a in r.attacks:
                _add(t, _attack_pair(a, kd, base, a))
    out.append(t)

    # 7c. int8 is more robust than its float parent (the research's PTSQ column), once per attack mode: a
    # transfer attack and a white-box one measure different things, and one verdict must not mix them.
    modes: dict[str, list[Row]] = {}
    for q in (x for x in r.table2_rows if x.kind == "PTSQ"):
        for cell in q.attacks.values():
            mode = cell.mode or q.mode or "unknown mode"
            if q not in modes.setdefault(mode, []):
                modes[mode].append(q)
    for mode, quantized in sorted(modes.items()):
        t = Trend(
            f"int8-robust[{mode}]",
            f"Quantized (int8 PTSQ) models are more robust to attacks than their float parent (attacked {mode}).",
            "each PTSQ variant's robust accuracy against its baseline's, under every attack both ran, "
            f"counting only the int8 results of mode {mode}.",
            note="under transfer, adversarials are crafted on the float parent: a minimum-norm perturbation "
            "that barely crosses the parent's boundary often does not fool the int8 model, which is not "
            "robustness."
            if mode == "transfer"
            else "",
        )
        for q in quantized:
            base = base2.get(q.model)
            if base is None:
                continue
            for a in r.attacks:
                cell = q.attacks.get(a)
                if cell is not None and (cell.mode or q.mode or "unknown mode") == mode:
                    _add(t, _attack_pair(f"{q.model} {a}", q, base, a))
        out.append(t)

    # 8. Iterative attacks are stronger than one-step ones.
    t = Trend(
        "pgd-vs-fgsm",
        "Iterative attacks (PGD) are stronger than one-step ones (FGSM) at the same budget.",
        "per model, robust accuracy under FGSM against PGD at the same eps: PGD should leave less.",
    )
    for row in r.table2_rows:
        for fg_name, fg in row.attacks.items():
            if fg.attack != "fgsm" or fg.eps is None:
                continue
            for pgd_name, pgd in row.attacks.items():
                if pgd.attack.startswith("pgd") and pgd.eps is not None and math.isclose(pgd.eps, fg.eps, rel_tol=1e-3):
                    _add(
                        t,
                        Comparison(
                            f"{row.label()} ε {_eps(fg.eps)}",
                            fg_name,
                            fg.robust,
                            fg.n,
                            pgd_name,
                            pgd.robust,
                            pgd.n,
                            pairs=paired_counts(fg.outcomes, pgd.outcomes),
                        ),
                    )
    out.append(t)
    return out


def _size_groups(rows: Sequence[Row]) -> list[list[Row]]:
    """Rows grouped by parameter count: each group within SIZE_TOLERANCE of its smallest member."""
    groups: list[list[Row]] = []
    for row in sorted(rows, key=lambda x: x.parameters or 0):
        if groups and _same_size(groups[-1][0], row):
            groups[-1].append(row)
        else:
            groups.append([row])
    return groups


def _eps(eps: float | None) -> str:
    if eps is None:
        return ""
    k = eps * 255
    if eps < 0.1 and k >= 0.5 and abs(k - round(k)) < 0.01:  # an L-inf budget in pixel steps
        return f"{round(k)}/255"
    return f"{eps:g}"


# --- rendering -----------------------------------------------------------------------------------------


def _table1(r: Research) -> tuple[list[str], list[list[str]]]:
    head = ["model", "variant", "method", "params (M)", "size (MB)"]
    if r.source:
        head.append(f"{r.source} (source)")
    head += [f"{r.source}→{d}" if r.source else d for d in r.targets]
    body = []
    last = None
    for row in r.table1_rows:
        cells = [
            row.model if row.model != last else "",
            row.variant,
            row.method,
            "-" if row.parameters is None else f"{row.parameters / 1e6:.2f}",
            "-" if row.bytes is None else f"{row.bytes / 1e6:.1f}",
        ]
        if r.source:
            cells.append(_pct(row.accuracy.get(r.source)))
        cells += [_pct(row.accuracy.get(d)) for d in r.targets]
        body.append(cells)
        last = row.model
    return head, body


def _attack_header(r: Research, name: str) -> str:
    eps = {_eps(row.attacks[name].eps) for row in r.table2_rows if name in row.attacks}
    eps.discard("")
    return f"{name} (ε {eps.pop()})" if len(eps) == 1 else name


def _table2(r: Research) -> tuple[list[str], list[list[str]]]:
    head = [
        "model",
        "variant",
        "method",
        "params (M)",
        "n",
        "clean",
        *(_attack_header(r, a) for a in r.attacks),
        "mode",
    ]
    body = []
    last = None
    for row in r.table2_rows:
        cells = list(row.attacks.values())
        widest = max(cells, key=lambda c: c.n or 0)
        ns = sorted({c.n for c in cells if c.n})
        modes = sorted({c.mode for c in cells if c.mode})
        body.append(
            [
                row.model if row.model != last else "",
                row.variant,
                row.method,
                "-" if row.parameters is None else f"{row.parameters / 1e6:.2f}",
                "/".join(str(n) for n in ns) or "-",
                _pct(widest.clean),
                *(_pct(row.attacks[a].robust) if a in row.attacks else "-" for a in r.attacks),
                ", ".join(modes) or "-",
            ]
        )
        last = row.model
    return head, body


def _notes(r: Research) -> tuple[str, str]:
    n1 = sorted({n for row in r.table1_rows for n in row.n.values()})
    one = (
        "Accuracy (%) on each domain's test split"
        + (f" (n = {', '.join(map(str, n1))} images per domain)" if n1 else "")
        + (f"; {r.source} is the source domain, the others are targets." if r.source else ".")
    )
    two = (
        "Robust accuracy (%) on n test images of the source domain; clean: their accuracy without attack. "
        "mode: white-box (gradients of the model itself; for int8, of a fake-quant copy with its scales) or "
        "transfer (adversarials crafted on the float parent, scored on the int8 model, whose kernels have no "
        "gradients)."
    )
    return one, two


def _trend_lines(r: Research) -> list[tuple[str, list[str]]]:
    out = []
    for i, t in enumerate(r.trends, 1):
        head = f"{i}. {t.claim} — {t.verdict.upper()}"
        body = [f"test: {t.test}", t.tally() + "."]
        body += [c.describe() for c in t.comparisons]
        if t.note:
            body.append(f"note: {t.note}")
        out.append((head, body))
    return out


def _noise_note() -> str:
    return (
        f"Each comparison is judged with Newcombe's {CONFIDENCE:.0%} interval for a difference of two "
        'proportions: the paired one (marked "paired CI") when the results recorded both sides\' per-image '
        "outcomes on the same images, else the one for independent samples with the n recorded in the "
        "results. It supports the trend when the interval is on the trend's side of zero, contradicts it "
        "when on the other side, and is within noise otherwise. A trend holds when none contradicts it and "
        "at least as many support it as are within noise, does not hold in the mirror case, is mixed when "
        "some support it and others contradict it, and is within noise otherwise."
    )


def _text_table(head: list[str], body: list[list[str]]) -> list[str]:
    rows = [head, *body]
    widths = [max(len(x[i]) for x in rows) for i in range(len(head))]
    numeric = {i for i in range(len(head)) if i >= 3 and all(_numeric(x[i]) for x in body)}
    lines = []
    for x in rows:
        lines.append(
            "  ".join(c.rjust(widths[i]) if i in numeric else c.ljust(widths[i]) for i, c in enumerate(x)).rstrip()
        )
    return lines


def _numeric(text: str) -> bool:
    return text == "-" or text.replace(".", "", 1).replace("/", "").isdigit()


def render_text(r: Research) -> str:
    """The tables and trends for a terminal."""
    one, two = _notes(r)
    out = []
    if r.table1_rows:
        out += ["Table 1: accuracy on the source and target domains", "", *_text_table(*_table1(r)), "", one, ""]
    else:
        out += ["Table 1: no accuracy items in the results.", ""]
    if r.table2_rows:
        out += ["Table 2: accuracy under adversarial attacks", "", *_text_table(*_table2(r)), "", two, ""]
    else:
        out += ["Table 2: no attack items in the results.", ""]
    out += ["Trends of the research, checked on these numbers", ""]
    for head, body in _trend_lines(r):
        out.append(head)
        out += [f"   {b}" for b in body]
        out.append("")
    out += [_noise_note(), ""]
    if r.failed:
        out += [_failed_note(r.failed), ""]
    return "\n".join(out)


def _failed_note(failed: int) -> str:
    return f"{failed} check{'s' if failed != 1 else ''} failed or errored in this run; the numbers above are what was measured."


def _md_table(head: list[str], body: list[list[str]]) -> list[str]:
    esc = [[c.replace("|", "\\|") for c in x] for x in (head, *body)]
    numeric = {i for i in range(len(head)) if i >= 3 and all(_numeric(x[i]) for x in body)}
    lines = [
        "| " + " | ".join(esc[0]) + " |",
        "|" + "|".join("---:" if i in numeric else "---" for i in range(len(head))) + "|",
    ]
    lines += ["| " + " | ".join(x) + " |" for x in esc[1:]]
    return lines


def render_markdown(r: Research, title: str = "The research's tables on robustspec's numbers") -> str:
    """The same as :func:`render_text`, as markdown."""
    one, two = _notes(r)
    out = [f"# {title}", ""]
    out += ["## Table 1: accuracy on the source and target domains", ""]
    out += [*_md_table(*_table1(r)), "", one, ""] if r.table1_rows else ["No accuracy items in the results.", ""]
    out += ["## Table 2: accuracy under adversarial attacks", ""]
    out += [*_md_table(*_table2(r)), "", two, ""] if r.table2_rows else ["No attack items in the results.", ""]
    out += ["## Trends", ""]
    for i, t in enumerate(r.trends, 1):
        out.append(f"{i}. **{t.claim}** — **{t.verdict}** ({t.tally()})")
        out.append(f"   - test: {t.test}")
        out += [f"   - {c.describe()}" for c in t.comparisons]
        if t.note:
            out.append(f"   - note: {t.note}")
    out += ["", _noise_note(), ""]
    if r.failed:
        out += [_failed_note(r.failed), ""]
    return "\n".join(out)


# --- running the suites --------------------------------------------------------------------------------


def suite_paths(root: Path, deep: bool = False, full: bool = False) -> list[Path]:
    """The suites to run, under ``root``: Table 1 (and its deep rows), Table 2 (or its full version)."""
    paths = [root / TABLE1_SUITE]
    if deep:
        paths.append(root / DEEP_SUITE)
    paths.append(root / (FULL_TABLE2_SUITE if full else TABLE2_SUITE))
    return paths


def pytest_command(
    suites: Sequence[Path], results: Path, workers: str | None = None, store: str | None = None
) -> list[str]:
    cmd = [sys.executable, "-m", "pytest", *(str(s) for s in suites), "--robustspec-results", str(results)]
    if workers is not None:
        cmd += ["-n", str(workers)]
    if store is not None:
        cmd += ["--robustspec-store", str(store)]
    return cmd


def run_suites(cmd: Sequence[str], cwd: Path | None = None) -> int:
    """Run pytest with its output going straight to ours (the user sees progress); its exit status."""
    sys.stdout.flush()
    return subprocess.run(list(cmd), cwd=cwd, check=False).returncode
