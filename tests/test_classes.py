"""Per-class numbers: the confusion matrix, balanced and per-class accuracy, their intervals, the
``balanced-accuracy`` and ``min-class-accuracy`` expectations, and ``class-weights: balanced`` training."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st

from robustspec.confusion import (
    Confusion,
    balanced_accuracy,
    confusion_matrix,
    confusion_properties,
    confusions_of,
    per_class_counts,
)
from robustspec.errors import ArtifactError
from robustspec.expect import EXPECTATIONS, Accuracy, CheckTarget
from robustspec.outcomes import class_digits, decode_classes, encode_classes
from robustspec.stats import mean_proportion_interval, wilson_interval

# --- the pure functions, on a matrix computed by hand ---------------------------------------------------

NAMES = ("mug", "pen", "ruler", "tape")
#: 12 test images; no image of "tape".
LABELS = [0, 0, 0, 0, 1, 1, 2, 2, 2, 2, 2, 2]
PREDICTED = [0, 0, 1, 2, 1, 0, 2, 2, 2, 2, 1, 3]
#: Rows true, columns predicted, counted by hand from the two lists above.
MATRIX = [[2, 1, 1, 0], [1, 1, 0, 0], [0, 1, 4, 1], [0, 0, 0, 0]]


def test_confusion_matrix_and_per_class_counts_by_hand() -> None:
    assert confusion_matrix(LABELS, PREDICTED, 4) == MATRIX
    assert per_class_counts(MATRIX) == [(2, 4), (1, 2), (4, 6), (0, 0)]
    c = Confusion.of(LABELS, PREDICTED, NAMES)
    assert (c.correct, c.n) == (7, 12)
    assert c.class_accuracy() == {"mug": 0.5, "pen": 0.5, "ruler": pytest.approx(4 / 6), "tape": None}
    # (1/2 + 1/2 + 2/3) / 3: tape has no test images and is left out (not counted as 0).
    assert c.balanced_accuracy == pytest.approx(5 / 9) == balanced_accuracy([(2, 4), (1, 2), (4, 6), (0, 0)])
    assert c.balanced_accuracy != pytest.approx(c.correct / c.n)  # 7/12: the classes are not balanced
    # Ties at 0.5: the class with more test images first.
    assert c.worst() == [("mug", 2, 4), ("pen", 1, 2), ("ruler", 4, 6)]
    assert c.confusions(2) == [("mug", "pen", 1), ("mug", "ruler", 1)]
    assert balanced_accuracy([(0, 0)]) == 0.0


def test_confusion_properties_round_trip() -> None:
    c = Confusion.of(LABELS, PREDICTED, NAMES)
    props = confusion_properties("webcam", c)
    assert props["balanced_accuracy[webcam]"] == pytest.approx(0.555556)
    assert props["class_accuracy[webcam][ruler]"] == pytest.approx(0.666667)
    assert "class_accuracy[webcam][tape]" not in props  # no test images: no accuracy
    assert json.loads(props["confusion[webcam]"]) == {"classes": list(NAMES), "matrix": MATRIX}
    assert confusions_of({**props, "accuracy[webcam]": 0.5}) == {"webcam": c}
    for broken in ("{", '{"classes": ["a"], "matrix": [[1, 2]]}', '{"classes": ["a"], "matrix": [[true]]}', 3):
        assert Confusion.from_json(broken) is None


def test_a_confusion_must_be_square_counts() -> None:
    with pytest.raises(ValueError, match="2 x 2"):
        Confusion(("a", "b"), ((1, 0),))
    with pytest.raises(ValueError, match="counts"):
        Confusion(("a",), ((-1,),))
    with pytest.raises(ValueError, match="3 labels and 2 predictions"):
        confusion_matrix([0, 0, 1], [0, 1], 2)


def test_class_encoding() -> None:
    assert [class_digits(k) for k in (1, 2, 16, 17, 31, 256, 257)] == [1, 1, 1, 2, 2, 2, 3]
    assert encode_classes([0, 30, 15], 31) == "001e0f"
    assert decode_classes("001e0f", 3, 31) == [0, 30, 15]
    for bad in ("001e0", "001e0g", "001E0F", "+01e0f", " 01e0f", "001f0f"):  # length, digits, case, sign, 31
        assert decode_classes(bad, 3, 31) is None
    assert decode_classes(None, 0, 31) is None
    with pytest.raises(ValueError, match="class index 31"):
        encode_classes([31], 31)


@given(st.integers(1, 300).flatmap(lambda k: st.tuples(st.just(k), st.lists(st.integers(0, k - 1), max_size=40))))
def test_class_encoding_round_trips(case: tuple[int, list[int]]) -> None:
    classes, values = case
    text = encode_classes(values, classes)
    assert len(text) == len(values) * class_digits(classes)
    assert decode_classes(text, len(values), classes) == values


# --- the interval for balanced accuracy ------------------------------------------------------------------


def test_one_class_gives_its_wilson_interval() -> None:
    assert mean_proportion_interval([(9, 10)], 0.95) == pytest.approx(wilson_interval(9, 10, 0.95))


def test_the_interval_by_hand() -> None:
    # MOVER: each class's distance to its Wilson limit, combined in quadrature, divided by K.
    (l1, u1), (l2, u2) = wilson_interval(95, 100), wilson_interval(9, 10)
    mean = (0.95 + 0.9) / 2
    lo, hi = mean_proportion_interval([(95, 100), (9, 10)])
    assert lo == pytest.approx(mean - ((0.95 - l1) ** 2 + (0.9 - l2) ** 2) ** 0.5 / 2)
    assert hi == pytest.approx(mean + ((u1 - 0.95) ** 2 + (u2 - 0.9) ** 2) ** 0.5 / 2)
    # Every class right is not a point: the few images of the small class keep the interval open.
    lo, hi = mean_proportion_interval([(100, 100), (5, 5)])
    assert hi == 1.0 and lo < 0.8
    with pytest.raises(ValueError):
        mean_proportion_interval([])
    with pytest.raises(ValueError):
        mean_proportion_interval([(1, 0)])


def _rows(k: int) -> st.SearchStrategy[list[list[int]]]:
    return st.lists(st.lists(st.integers(0, 12), min_size=k, max_size=k), min_size=k, max_size=k)


matrices = st.integers(1, 6).flatmap(_rows).filter(lambda m: any(sum(r) for r in m))


def _confusion(matrix: list[list[int]]) -> Confusion:
    return Confusion(tuple(f"c{i}" for i in range(len(matrix))), tuple(tuple(r) for r in matrix))


@given(matrices, st.sampled_from([0.8, 0.9, 0.95, 0.99]))
def test_balanced_accuracy_lies_between_the_worst_and_the_best_class(matrix: list[list[int]], level: float) -> None:
    c = _confusion(matrix)
    recalls = [v for v in c.class_accuracy().values() if v is not None]
    assert min(recalls) - 1e-12 <= c.balanced_accuracy <= max(recalls) + 1e-12
    assert c.worst()[0][1] / c.worst()[0][2] == min(recalls)
    lo, hi = c.balanced_interval(level)
    assert 0.0 <= lo <= c.balanced_accuracy <= hi <= 1.0
    wider = c.balanced_interval(0.995)
    assert wider[0] <= lo + 1e-12 and wider[1] >= hi - 1e-12
    # The mean's lower bound is at least the mean of the classes' lower bounds, so at least the worst one.
    lows = [low for low, _ in c.class_intervals(level).values()]
    assert lo >= sum(lows) / len(lows) - 1e-12 >= min(lows) - 1e-12


@given(st.integers(1, 6), st.integers(1, 15), st.data())
def test_balanced_accuracy_is_accuracy_when_the_classes_are_balanced(k: int, n: int, data: st.DataObject) -> None:
    correct = data.draw(st.lists(st.integers(0, n), min_size=k, max_size=k))
    # Each class: `correct` right, the rest predicted as the next class.
    matrix = [[0] * k for _ in range(k)]
    for i, c in enumerate(correct):
        matrix[i][i] += c if k > 1 else n
        matrix[i][(i + 1) % k] += n - c if k > 1 else 0
    conf = _confusion(matrix)
    assert conf.balanced_accuracy == pytest.approx(conf.correct / conf.n)


# --- the expectations -----------------------------------------------------------------------------------


@dataclass
class Fake:
    acc: dict
    variant: str = "baseline"
    source: str = "amazon"

    def accuracy(self, domain, variant=None):
        return self.acc[domain]

    def metrics(self, variant=None):
        return {}


def with_classes(matrix: list[list[int]], names: tuple[str, ...] | None = None) -> Accuracy:
    c = Confusion(names or tuple(f"c{i}" for i in range(len(matrix))), tuple(tuple(r) for r in matrix))
    return Accuracy(c.correct, c.n, classes=c)


#: mug 95 of 100 right, pen 9 of 10: accuracy 104/110 = 0.945, balanced 0.925, worst class 0.9.
SKEWED = with_classes([[95, 5], [1, 9]], ("mug", "pen"))


def judge(kind: str, params: dict, acc: Accuracy, domain: str = "webcam"):
    exp = EXPECTATIONS.get(kind)()
    return exp.judge(exp.Params.model_validate(params), CheckTarget(domain, (domain,)), Fake({domain: acc}))


def test_balanced_accuracy_gates_the_mean_of_the_classes() -> None:
    assert judge("target-accuracy", {"min": 0.93}, SKEWED).passed  # the big class carries the accuracy
    out = judge("balanced-accuracy", {"min": 0.93}, SKEWED)
    assert not out.passed and out.measured == pytest.approx(0.925)
    assert "measured 0.925" in out.message and "worst classes: pen 0.900 (9/10), mug 0.950 (95/100)" in out.message
    assert judge("balanced-accuracy", {"min": 0.92}, SKEWED).passed
    # With confidence the lower bound gates: the 10 images of pen leave it far below the point estimate.
    conf = judge("balanced-accuracy", {"min": 0.9, "confidence": 0.95}, SKEWED)
    assert not conf.passed and conf.ci_low == pytest.approx(mean_proportion_interval([(95, 100), (9, 10)])[0])
    assert "95% lower bound" in conf.message
    props = dict(conf.properties())
    assert props["worst_class"] == "pen" and props["classes"] == 2 and props["confidence"] == 0.95
    assert props["class_accuracy[webcam][pen]"] == 0.9 and "confusion[webcam]" in props


def test_min_class_accuracy_names_the_classes_below() -> None:
    out = judge("min-class-accuracy", {"min": 0.85}, SKEWED)
    assert out.passed and out.measured == pytest.approx(0.9) and out.n == 10
    out = judge("min-class-accuracy", {"min": 0.95}, SKEWED)  # mug's 0.95 is enough, pen's 0.9 is not
    assert not out.passed and "fails for 1: pen 0.900 (9/10)" in out.message
    assert dict(out.properties())["failing_classes"] == "pen"
    conf = judge("min-class-accuracy", {"min": 0.85, "confidence": 0.95}, SKEWED)
    low = wilson_interval(9, 10)[0]
    assert not conf.passed and conf.ci_low == pytest.approx(low)
    assert f"pen 0.900 (9/10, lower bound {low:.3f})" in conf.message
    many = with_classes([[1, 9, 0, 0, 0], [0, 2, 8, 0, 0], [0, 0, 3, 7, 0], [0, 0, 0, 4, 6], [5, 0, 0, 0, 5]])
    out = judge("min-class-accuracy", {"min": 0.6}, many)
    assert "fails for 5: c0 0.100 (1/10), c1 0.200 (2/10), c2 0.300 (3/10) and 2 more" in out.message


def test_an_evaluation_without_classes_cannot_be_judged() -> None:
    for kind in ("balanced-accuracy", "min-class-accuracy"):
        with pytest.raises(ArtifactError, match="no per-class numbers"):
            judge(kind, {"min": 0.5}, Accuracy(9, 10))
    # The plain accuracy checks judge it, and record per-class numbers only when they have them.
    assert "confusion[webcam]" not in dict(judge("target-accuracy", {"min": 0.5}, Accuracy(9, 10)).properties())
    props = dict(judge("source-accuracy", {"min": 0.5}, SKEWED, domain="amazon").properties())
    assert props["balanced_accuracy[amazon]"] == 0.925 and props["class_accuracy[amazon][mug]"] == 0.95


def test_items_are_the_source_and_every_target_unless_named() -> None:
    for kind in ("balanced-accuracy", "min-class-accuracy"):
        exp = EXPECTATIONS.get(kind)()
        every = exp.expand(exp.Params.model_validate({"min": 0.5}), "amazon", ["webcam", "dslr"], "baseline")
        assert [t.label for t in every] == ["amazon", "webcam", "dslr"]
        named = exp.Params.model_validate({"min": 0.5, "domains": ["dslr"]})
        assert [t.domains for t in exp.expand(named, "amazon", ["webcam", "dslr"], "fp")] == [("dslr",)]


@given(matrices, st.floats(0.0, 1.0), st.sampled_from([None, 0.9, 0.95]))
def test_the_two_gates_agree(matrix: list[list[int]], minimum: float, confidence: float | None) -> None:
    acc = with_classes(matrix)
    gate = {"min": minimum} if confidence is None else {"min": minimum, "confidence": confidence}
    worst, balanced = judge("min-class-accuracy", gate, acc), judge("balanced-accuracy", gate, acc)
    # Every class at min implies their mean is (also for the lower bounds: lo >= mean of the classes' lows).
    if worst.passed:
        assert balanced.passed
    assert worst.measured <= balanced.measured + 1e-12
    # A confirmed pass is a pass on the point estimate too.
    if confidence is not None:
        point = {"min": minimum}
        assert not worst.passed or judge("min-class-accuracy", point, acc).passed
        assert not balanced.passed or judge("balanced-accuracy", point, acc).passed
