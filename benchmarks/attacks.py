"""Attack speed: robustspec's attacks against torchattacks, foolbox, IBM ART and adv-lib, on one batch.

    python benchmarks/attacks.py [--model resnet18] [--classes 10] [--size 32] [--batch 64] [--threads 2]
                                 [--small 16] [--tiny 8] [--row-timeout 50] [--json out.json]
                                 [--only fgsm,pgd-linf,...] [--clock wall|cpu] [--repeat 1]

A network (``Normalized(build_network(model, classes))``) is trained briefly on office-synth so that the
attacks have real work; the attacked images are test images it classifies correctly, with their true
labels. Every library attacks the same images with matched settings, on the same model with its
parameters frozen (``requires_grad_(False)``: input gradients only) and in eval mode.

Cost is measured as "eq": the attack's wall time divided by one forward+backward pass (input gradient of
the summed cross-entropy) of the same batch, timed in the same run just before the attack and again just
after it (median of 5 each; eq divides by their mean). On a loaded machine the ratio is stable where
wall-clock times are not, as long as the load stays put during the row: a row whose two reference times
differ by more than 1.5x is flagged, and its eq is uncertain by that factor. When other processes keep
both cores busy, ``--threads 2`` makes passes 2-30x slower at random (the two OpenMP threads wait for each
other whenever one is descheduled); ``--threads 1`` then gives steady passes and usable eq. With
``--threads 1 --clock cpu`` both timings are the process's CPU time, which leaves out the time the process
waits for a core: eq then holds however busy the machine is (images/s is then per CPU-second).
``--repeat N`` runs N rounds, the libraries interleaved within each, and keeps each library's median-eq
round (its note lists all N).

Passes are counted exactly with a hook on the model: forward passes (every call) and backward passes
(every gradient that reaches the logits), in units of whole-batch passes (images through the model /
images attacked).

Success is the fraction of attacked images the model misclassifies after the attack (NaN images count as
failures). For the minimum-norm attacks the median L2 is over the successful perturbations (JSMA: the
median L0, as the fraction of input values changed). A peer that fails gets "error: ..." in its row; a
row that runs longer than ``--row-timeout`` seconds is stopped and reported as a lower bound.

Run by hand; results go to benchmarks/README.md (summarised in docs/speed.md, "Attack speed"), never into a
timed test.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import importlib
import inspect
import json
import os
import signal
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from robustspec.attacks import ATTACKS  # noqa: E402
from robustspec.data.synthetic import OfficeSynth  # noqa: E402
from robustspec.models import Normalized, build_network  # noqa: E402
from robustspec.spec.schema import TrainRecipe  # noqa: E402
from robustspec.train import train_supervised  # noqa: E402

ALL = ["fgsm", "pgd-linf", "pgd-l2", "cw-l2", "deepfool", "ddn", "jsma", "square", "autoattack"]
MIN_NORM = {"cw-l2", "deepfool", "ddn", "jsma"}
BOUNDED = {"fgsm": "linf", "pgd-linf": "linf", "pgd-l2": "l2", "square": "linf", "autoattack": "linf"}

# Matched settings (the pixel scale is [0, 1]).
EPS_LINF = 4 / 255
EPS_L2 = 0.5
STEPS = 10
ALPHA_LINF = 2.5 * EPS_LINF / STEPS  # 1/255, robustspec's default step
ALPHA_L2 = 2.5 * EPS_L2 / STEPS
CW = {"steps": 50, "c": 1.0, "kappa": 0.0, "lr": 0.01}
DEEPFOOL = {"steps": 50, "candidates": 10, "overshoot": 0.02}
DDN = {"steps": 100, "init_epsilon": 1.0, "gamma": 0.05}
JSMA = {"theta": 1.0, "gamma": 0.1}
SQUARE_QUERIES = 300  # robustspec's default is 1000; 300 keeps three libraries under the time budget
SQUARE_P_INIT = 0.8
#: The clock of eq's two timings; ``--clock cpu`` makes it this process's CPU time (see the module docstring).
CLOCK: Callable[[], float] = time.perf_counter
AA_STEPS = 10  # torchattacks.AutoAttack's APGD/FAB steps (robustspec's default is the reference's 100)


# --- pass counting and timing --------------------------------------------------------------------------


class PassCounter:
    """Images through the model forward, and images whose logits received a gradient (backward)."""

    def __init__(self, model: nn.Module) -> None:
        self.on = False
        self.fwd = 0
        self.bwd = 0
        model.register_forward_hook(self._forward)

    def _count_backward(self, grad: torch.Tensor) -> None:
        if self.on:
            self.bwd += int(grad.shape[0]) if grad.ndim else 1

    def _forward(self, module: nn.Module, args: Any, output: Any) -> None:
        if not self.on or not isinstance(output, torch.Tensor):
            return
        self.fwd += int(output.shape[0]) if output.ndim > 1 else 1
        if output.requires_grad:
            output.register_hook(self._count_backward)

    def reset(self) -> None:
        self.fwd = self.bwd = 0


def reference_pass(model: nn.Module, x: torch.Tensor, y: torch.Tensor, repeats: int = 5) -> float:
    """Median time of one forward+backward pass (input gradient of the summed cross-entropy)."""
    times = []
    for _ in range(repeats):
        start = CLOCK()
        xx = x.detach().clone().requires_grad_(True)
        with torch.enable_grad():
            loss = F.cross_entropy(model(xx), y, reduction="sum")
            torch.autograd.grad(loss, xx)
        times.append(CLOCK() - start)
    return statistics.median(times)


class RowTimeout(Exception):
    pass


@contextlib.contextmanager
def time_limit(seconds: float):
    if seconds <= 0 or not hasattr(signal, "SIGALRM"):
        yield
        return

    def _raise(signum, frame):
        raise RowTimeout()

    old = signal.signal(signal.SIGALRM, _raise)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


@dataclass
class Row:
    attack: str
    library: str
    n: int
    seconds: float | None = None
    ref_seconds: float | None = None  # mean of the reference pass just before and just after
    ref_before: float | None = None
    ref_after: float | None = None
    eq: float | None = None
    fwd: float | None = None
    bwd: float | None = None
    success: float | None = None
    median_l2: float | None = None
    median_l0: float | None = None
    images_per_second: float | None = None
    error: str | None = None
    timeout: bool = False
    notes: list[str] = field(default_factory=list)


def score(row: Row, model: nn.Module, x: torch.Tensor, y: torch.Tensor, adv: Any) -> None:
    if not isinstance(adv, torch.Tensor):
        adv = torch.as_tensor(adv)
    adv = adv.detach().float().cpu().reshape(x.shape)
    bad = ~torch.isfinite(adv).flatten(1).all(1)
    if bool(bad.any()):
        row.notes.append(f"NaN/inf in {int(bad.sum())} images (counted as failures)")
        adv = torch.where(bad.view(-1, 1, 1, 1), x, adv)
    lo, hi = float(adv.min()), float(adv.max())
    if lo < -1e-6 or hi > 1 + 1e-6:
        row.notes.append(f"pixels outside [0, 1] ({lo:.3g}..{hi:.3g})")
    delta = (adv - x).flatten(1)
    norm = BOUNDED.get(row.attack)
    if norm == "linf" and float(delta.abs().amax()) > EPS_LINF + 1e-6:
        row.notes.append(f"left the L-inf ball (max {float(delta.abs().amax()):.4g} > {EPS_LINF:.4g})")
    if norm == "l2" and float(delta.norm(dim=1).max()) > EPS_L2 * (1 + 1e-5):
        row.notes.append(f"left the L2 ball (max {float(delta.norm(dim=1).max()):.4g} > {EPS_L2})")
    with torch.no_grad():
        fooled = (model(adv).argmax(1) != y) & ~bad
    row.success = float(fooled.float().mean())
    if row.attack in MIN_NORM and bool(fooled.any()):
        row.median_l2 = float(delta.norm(dim=1)[fooled].median())
        row.median_l0 = float((delta != 0).float().mean(1)[fooled].median())


def measure(
    row: Row,
    model: nn.Module,
    counter: PassCounter,
    x: torch.Tensor,
    y: torch.Tensor,
    run: Callable[[torch.Tensor, torch.Tensor], Any],
    timeout: float,
) -> Row:
    row.ref_before = reference_pass(model, x, y)
    torch.manual_seed(0)
    counter.reset()
    counter.on = True
    start = CLOCK()
    adv = None
    try:
        with time_limit(timeout), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            adv = run(x.clone(), y.clone())
    except RowTimeout:
        row.timeout = True
    except Exception as exc:  # noqa: BLE001 - a failing peer is a row, never a crash
        row.error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:160]
    finally:
        counter.on = False
        model.eval().requires_grad_(False)  # a peer stopped mid-run may have left its own mode behind
    row.seconds = CLOCK() - start
    row.ref_after = reference_pass(model, x, y)
    row.ref_seconds = (row.ref_before + row.ref_after) / 2
    row.eq = row.seconds / row.ref_seconds
    drift = max(row.ref_before, row.ref_after) / min(row.ref_before, row.ref_after)
    if drift > 1.5:
        row.notes.append(
            f"load changed during the row: reference pass {1e3 * row.ref_before:.0f} ms before, "
            f"{1e3 * row.ref_after:.0f} ms after (eq uncertain by up to {drift:.1f}x)"
        )
    row.fwd, row.bwd = counter.fwd / len(x), counter.bwd / len(x)
    if row.error is None and not row.timeout:
        row.images_per_second = len(x) / row.seconds
        try:
            score(row, model, x, y, adv)
        except Exception as exc:  # noqa: BLE001 - a scoring failure is a row, never a crash
            row.error = f"scoring: {type(exc).__name__}: {exc}"[:160]
    return row


# --- the libraries ------------------------------------------------------------------------------------


def ours(name: str, params: dict, classes: int, model: nn.Module) -> Callable:
    attack = ATTACKS.get(name)()
    p = attack.Params.model_validate(params)
    problems = attack.check(p, classes)
    if problems:
        raise ValueError("; ".join(problems))

    def run(x, y):
        return attack.run(model, x, y, p, torch.Generator().manual_seed(0))

    return run


def torchattacks_runs(name: str, classes: int, m: nn.Module, shape: tuple[int, ...]) -> Callable | None:
    import torchattacks as ta

    make: Callable[[], Any]
    if name == "fgsm":
        make = lambda: ta.FGSM(m, eps=EPS_LINF)
    elif name == "pgd-linf":
        make = lambda: ta.PGD(m, eps=EPS_LINF, alpha=ALPHA_LINF, steps=STEPS, random_start=True)
    elif name == "pgd-l2":
        make = lambda: ta.PGDL2(m, eps=EPS_L2, alpha=ALPHA_L2, steps=STEPS, random_start=True)
    elif name == "cw-l2":
        make = lambda: ta.CW(m, c=CW["c"], kappa=CW["kappa"], steps=CW["steps"], lr=CW["lr"])
    elif name == "deepfool":
        make = lambda: ta.DeepFool(m, steps=DEEPFOOL["steps"], overshoot=DEEPFOOL["overshoot"])
    elif name == "jsma":

        def make():
            atk = ta.JSMA(m, theta=JSMA["theta"], gamma=JSMA["gamma"])
            # Its untargeted mode hard-codes (y + 1) % 10; say the same target for any class count.
            atk.set_mode_targeted_by_function(lambda images, labels: (labels + 1) % classes)
            return atk
    elif name == "square":
        make = lambda: ta.Square(
            m, norm="Linf", eps=EPS_LINF, n_queries=SQUARE_QUERIES, n_restarts=1, p_init=SQUARE_P_INIT, seed=0
        )
    elif name == "autoattack":
        make = lambda: ta.AutoAttack(m, norm="Linf", eps=EPS_LINF, version="standard", n_classes=classes, seed=0)
    else:
        return None
    atk = make()
    return lambda x, y: atk(x, y)


def foolbox_runs(name: str, classes: int, model: nn.Module, shape: tuple[int, ...]) -> Callable | None:
    import foolbox as fb

    fmodel = fb.PyTorchModel(model, bounds=(0.0, 1.0), device="cpu")
    if name == "fgsm":
        atk, eps = fb.attacks.LinfFastGradientAttack(random_start=False), EPS_LINF
    elif name == "pgd-linf":
        atk, eps = fb.attacks.LinfPGD(abs_stepsize=ALPHA_LINF, steps=STEPS, random_start=True), EPS_LINF
    elif name == "pgd-l2":
        atk, eps = fb.attacks.L2PGD(abs_stepsize=ALPHA_L2, steps=STEPS, random_start=True), EPS_L2
    elif name == "cw-l2":
        atk, eps = (
            fb.attacks.L2CarliniWagnerAttack(
                binary_search_steps=1,
                steps=CW["steps"],
                stepsize=CW["lr"],
                confidence=CW["kappa"],
                initial_const=CW["c"],
            ),
            None,
        )
    elif name == "deepfool":
        atk, eps = fb.attacks.L2DeepFoolAttack(**DEEPFOOL), None
    elif name == "ddn":
        atk, eps = fb.attacks.DDNAttack(**DDN), None
    else:
        return None

    def run(x, y):
        raw, clipped, _ = atk(fmodel, x, y, epsilons=eps)
        adv = raw if eps is None else clipped
        if name == "cw-l2":
            # foolbox's C&W returns an all-black image for a sample it failed on (a "success" for any
            # model that does not call black the true class): return those samples unchanged instead.
            black = adv.flatten(1).abs().amax(1) == 0
            adv = torch.where(black.view(-1, 1, 1, 1), x, adv)
        return adv

    return run


def art_runs(name: str, classes: int, model: nn.Module, shape: tuple[int, ...]) -> Callable | None:
    import numpy as np
    from art.attacks import evasion as ev
    from art.estimators.classification import PyTorchClassifier

    clf = PyTorchClassifier(
        model=model,
        loss=nn.CrossEntropyLoss(),
        input_shape=tuple(shape),
        nb_classes=classes,
        clip_values=(0.0, 1.0),
        device_type="cpu",
    )
    onehot = lambda t: np.eye(classes, dtype=np.float32)[t.numpy()]
    labels_fn = lambda y: onehot(y)
    if name == "fgsm":
        make = lambda n: ev.FastGradientMethod(clf, norm=np.inf, eps=EPS_LINF, batch_size=n)
    elif name == "pgd-linf":
        make = lambda n: ev.ProjectedGradientDescent(
            clf,
            norm=np.inf,
            eps=EPS_LINF,
            eps_step=ALPHA_LINF,
            max_iter=STEPS,
            num_random_init=1,
            batch_size=n,
            verbose=False,
        )
    elif name == "pgd-l2":
        make = lambda n: ev.ProjectedGradientDescent(
            clf, norm=2, eps=EPS_L2, eps_step=ALPHA_L2, max_iter=STEPS, num_random_init=1, batch_size=n, verbose=False
        )
    elif name == "cw-l2":
        make = lambda n: ev.CarliniL2Method(
            clf,
            confidence=CW["kappa"],
            learning_rate=CW["lr"],
            binary_search_steps=1,
            max_iter=CW["steps"],
            initial_const=CW["c"],
            batch_size=n,
            verbose=False,
        )
    elif name == "deepfool":
        make = lambda n: ev.DeepFool(
            clf,
            max_iter=DEEPFOOL["steps"],
            epsilon=DEEPFOOL["overshoot"],
            nb_grads=DEEPFOOL["candidates"],
            batch_size=n,
            verbose=False,
        )
    elif name == "jsma":
        make = lambda n: ev.SaliencyMapMethod(
            clf, theta=JSMA["theta"], gamma=JSMA["gamma"], batch_size=n, verbose=False
        )
        labels_fn = lambda y: onehot((y + 1) % classes)  # the target, as for the others
    elif name == "square":
        make = lambda n: ev.SquareAttack(
            clf,
            norm=np.inf,
            max_iter=SQUARE_QUERIES,
            eps=EPS_LINF,
            p_init=SQUARE_P_INIT,
            nb_restarts=1,
            batch_size=n,
            verbose=False,
        )
    else:
        return None

    def run(x, y):
        atk = make(len(x))
        return torch.from_numpy(atk.generate(x=x.numpy(), y=labels_fn(y)))

    return run


def _call(fn: Callable, *args: Any, **kwargs: Any) -> Any:
    """Call with the keyword arguments ``fn`` accepts (adv-lib's names vary between versions)."""
    names = inspect.signature(fn).parameters
    return fn(*args, **{k: v for k, v in kwargs.items() if k in names})


def advlib_runs(name: str, classes: int, model: nn.Module, shape: tuple[int, ...]) -> Callable | None:
    attacks = importlib.import_module("adv_lib.attacks")
    if name == "ddn":
        return lambda x, y: _call(
            attacks.ddn, model, x, y, steps=DDN["steps"], init_norm=DDN["init_epsilon"], γ=DDN["gamma"], levels=None
        )
    if name == "cw-l2":
        return lambda x, y: _call(
            attacks.carlini_wagner_l2,
            model,
            x,
            y,
            confidence=CW["kappa"],
            learning_rate=CW["lr"],
            initial_const=CW["c"],
            binary_search_steps=1,
            max_iterations=CW["steps"],
        )
    if name == "deepfool":
        # adv-lib's DeepFool (``df``) linearises every class; with 10 classes that equals 10 candidates.
        return lambda x, y: _call(
            attacks.df, model, x, y, steps=DEEPFOOL["steps"], overshoot=DEEPFOOL["overshoot"], norm=2
        )
    if name == "pgd-linf":
        return lambda x, y: _call(
            attacks.pgd_linf,
            model,
            x,
            y,
            ε=EPS_LINF,
            steps=STEPS,
            random_init=True,
            restarts=1,
            absolute_step_size=ALPHA_LINF,
        )
    return None


#: robustspec's parameters per attack, matched to the peers' settings above.
OUR_PARAMS: dict[str, dict[str, Any]] = {
    "fgsm": {"eps": EPS_LINF},
    "pgd-linf": {"eps": EPS_LINF, "steps": STEPS, "alpha": ALPHA_LINF},
    "pgd-l2": {"eps": EPS_L2, "steps": STEPS, "alpha": ALPHA_L2},
    "cw-l2": {**CW, "binary_search_steps": 1},
    "deepfool": {**DEEPFOOL, "norm": "l2"},
    # levels null: no 8-bit quantisation of the iterates, as in foolbox (robustspec's default is 256)
    "ddn": {**DDN, "levels": None},
    "jsma": {**JSMA, "target": "next"},
    "square": {"eps": EPS_LINF, "queries": SQUARE_QUERIES, "p_init": SQUARE_P_INIT},
    "autoattack": {"eps": EPS_LINF, "version": "standard", "steps": AA_STEPS},
}


PEERS: list[tuple[str, Callable[..., Callable | None]]] = [
    ("torchattacks", torchattacks_runs),
    ("foolbox", foolbox_runs),
    ("IBM ART", art_runs),
    ("adv-lib", advlib_runs),
]
ADVLIB_ATTACKS = {"ddn", "cw-l2", "deepfool", "pgd-linf"}


# --- the run ------------------------------------------------------------------------------------------


def prepare(args: argparse.Namespace) -> tuple[nn.Module, torch.Tensor, torch.Tensor, float]:
    data = OfficeSynth(classes=args.classes, image_size=args.size).build_domain("amazon")
    model = Normalized(build_network(args.model, args.classes))
    start = time.perf_counter()
    stats = train_supervised(model, data["train"], TrainRecipe(epochs=args.epochs), device=torch.device("cpu"))
    print(
        f"trained {args.model} for {args.epochs} epochs in {time.perf_counter() - start:.0f} s "
        f"(train accuracy {stats['final_train_accuracy']:.2f})",
        flush=True,
    )
    model.eval().requires_grad_(False)
    test = data["test"]
    x = test.float_images()
    with torch.no_grad():
        pred = torch.cat([model(x[i : i + 256]).argmax(1) for i in range(0, len(x), 256)])
    correct = (pred == test.labels).nonzero().squeeze(1)
    order = correct[torch.randperm(len(correct), generator=torch.Generator().manual_seed(0))]
    take = order[: args.batch]
    acc = len(correct) / len(x)
    print(f"clean test accuracy {acc:.3f}; attacking {len(take)} correctly classified test images", flush=True)
    return model, x[take].contiguous(), test.labels[take].contiguous(), acc


def fmt(v: float | None, spec: str = ".1f") -> str:
    return "–" if v is None else format(v, spec)


def eq_text(r: Row) -> str:
    if r.error:
        return f"error: {r.error}"
    if r.timeout:
        return f"> {r.eq:.0f} (stopped at {r.seconds:.0f} s)"
    return f"{r.eq:.1f}" if r.eq < 100 else f"{r.eq:.0f}"


def table(rows: list[Row], sizes: dict[str, int]) -> str:
    out = [
        "| attack | library | eq | passes (fwd/bwd) | success | median L2 | img/s |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        attack = f"{r.attack} (n={sizes[r.attack]})"
        if r.error and r.error.startswith("skipped"):
            out.append(f"| {attack} | {r.library} | {r.error} | – | – | – | – |")
            continue
        passes = "–" if r.fwd is None or r.error else f"{r.fwd:.1f}/{r.bwd:.1f}"
        if r.attack == "jsma" and r.median_l0 is not None:
            norm = f"L0 {100 * r.median_l0:.1f}%"
        else:
            norm = fmt(r.median_l2, ".3f") if r.attack in MIN_NORM else "–"
        succ = "–" if r.success is None else f"{100 * r.success:.0f}%"
        ips = (
            "–"
            if r.images_per_second is None
            else (f"{r.images_per_second:.2f}" if r.images_per_second < 10 else f"{r.images_per_second:.0f}")
        )
        out.append(f"| {attack} | {r.library} | {eq_text(r)} | {passes} | {succ} | {norm} | {ips} |")
    return "\n".join(out)


def ok(r: Row) -> bool:
    return r.error is None and not r.timeout and r.success is not None


def summary(rows: list[Row], attacks: list[str]) -> tuple[str, list[dict]]:
    lines = [
        "| attack | fastest at equal success (±2 pts) | robustspec / fastest peer (eq) | robustspec / fastest peer at ≥ its success |",
        "|---|---|---|---|",
    ]
    out = []
    for a in attacks:
        group = [r for r in rows if r.attack == a and ok(r)]
        ours_row = next((r for r in group if r.library == "robustspec"), None)
        peers = [r for r in group if r.library != "robustspec"]
        if not group:
            continue
        best = max(r.success for r in group)
        fastest = min((r for r in group if r.success >= best - 0.02), key=lambda r: r.eq)
        ratio = ratio_eq = None
        if ours_row and peers:
            ratio = ours_row.eq / min(r.eq for r in peers)
            matched = [r for r in peers if r.success >= ours_row.success - 0.02]
            if matched:
                ratio_eq = ours_row.eq / min(r.eq for r in matched)
        out.append(
            {
                "attack": a,
                "fastest_at_equal_success": fastest.library,
                "ratio_vs_fastest_peer": ratio,
                "ratio_vs_fastest_peer_at_equal_success": ratio_eq,
            }
        )
        lines.append(
            f"| {a} | {fastest.library} (eq {fastest.eq:.1f}, {100 * fastest.success:.0f}%) | "
            f"{fmt(ratio, '.2f')} | {fmt(ratio_eq, '.2f') if ratio_eq is not None else 'no peer reaches its success'} |"
        )
    return "\n".join(lines), out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="resnet18")
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--batch", type=int, default=64, help="images for fgsm and pgd-*")
    ap.add_argument(
        "--small",
        type=int,
        default=16,
        help="images for cw-l2, deepfool, ddn and square (peers' per-image loops and ART's C&W and "
        "DeepFool cost hundreds of eq)",
    )
    ap.add_argument(
        "--tiny",
        type=int,
        default=8,
        help="images for jsma (torchattacks loops per image and pixel pair) and autoattack (Square-5000 "
        "on every point that survives the other three attacks)",
    )
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--row-timeout", type=float, default=50.0, help="stop one library's run after this many seconds")
    ap.add_argument("--json", default=None, help="also write the results here")
    ap.add_argument("--only", default=None, help="comma-separated attacks, e.g. fgsm,pgd-linf")
    ap.add_argument(
        "--clock",
        choices=["wall", "cpu"],
        default="wall",
        help="time eq with the wall clock, or with this process's CPU time (steady on a shared machine "
        "with --threads 1: time spent descheduled is not counted)",
    )
    ap.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="rounds per attack, the libraries interleaved; each library's row is its median-eq round",
    )
    args = ap.parse_args()

    attacks = ALL if not args.only else [a.strip() for a in args.only.split(",") if a.strip()]
    unknown = [a for a in attacks if a not in ALL]
    if unknown:
        ap.error(f"unknown attacks {unknown}; choose from {ALL}")
    torch.set_num_threads(args.threads)
    global CLOCK
    CLOCK = time.process_time if args.clock == "cpu" else time.perf_counter
    torch.manual_seed(0)
    warnings.filterwarnings("ignore")
    import logging

    logging.getLogger("art").setLevel(logging.ERROR)

    t0 = time.perf_counter()
    model, x_all, y_all, clean_acc = prepare(args)
    shape = tuple(x_all.shape[1:])
    counter = PassCounter(model)
    sizes = {a: args.batch for a in ALL}
    sizes.update({a: args.small for a in ("cw-l2", "deepfool", "ddn", "square")})
    sizes.update({a: args.tiny for a in ("jsma", "autoattack")})
    sizes = {a: min(n, len(x_all)) for a, n in sizes.items()}

    advlib_note = None
    try:
        importlib.import_module("adv_lib.attacks")
    except Exception as exc:  # noqa: BLE001 - adv-lib imports visdom at import time
        advlib_note = f"skipped: adv-lib not importable ({exc})"[:90]

    rows: list[Row] = []
    for a in attacks:
        n = sizes[a]
        x, y = x_all[:n], y_all[:n]
        # Every library's runner, ours first; a library without the attack has none.
        runners: list[tuple[str, Callable | None, str | None]] = []
        try:
            runners.append(("robustspec", ours(a, OUR_PARAMS[a], args.classes, model), None))
        except Exception as exc:  # noqa: BLE001
            runners.append(("robustspec", None, f"{type(exc).__name__}: {exc}"[:160]))
        for lib, factory in PEERS:
            if lib == "adv-lib" and a not in ADVLIB_ATTACKS:
                continue  # adv-lib's attacks compared here: ddn, carlini_wagner_l2, df (DeepFool), pgd_linf
            if lib == "adv-lib" and advlib_note:
                runners.append((lib, None, advlib_note))
                continue
            try:
                run = factory(a, args.classes, model, shape)
            except Exception as exc:  # noqa: BLE001
                runners.append(
                    (lib, None, f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:160])
                )
                continue
            if run is not None:  # None: the library has no such attack
                runners.append((lib, run, None))
        # Rounds interleave the libraries, so a change of load hits all of them; each keeps its median row.
        tries: dict[str, list[Row]] = {lib: [] for lib, _, _ in runners}
        dropped: set[str] = set()  # failed or timed out: not run again
        for rnd in range(args.repeat):
            for lib, run, error in runners:
                if lib in dropped:
                    continue
                row = Row(a, lib, n, error=error)
                if run is not None:
                    measure(row, model, counter, x, y, run, args.row_timeout)
                tries[lib].append(row)
                if error is None:
                    tag = f" [round {rnd + 1}]" if args.repeat > 1 else ""
                    print(f"  {a:<10} {lib:<14} {eq_text(row)} ({row.seconds or 0:.1f} s){tag}", flush=True)
                if error is not None or row.error or row.timeout:
                    dropped.add(lib)
        for lib, _, _ in runners:
            got = tries[lib]
            good = sorted((r for r in got if ok(r)), key=lambda r: r.eq)
            if len(got) > 1 and good:
                row = good[len(good) // 2]
                row.notes.append(
                    f"median of {len(good)} of {len(got)} rounds (eq {', '.join(f'{r.eq:.1f}' for r in good)})"
                )
            else:
                row = got[-1]
            rows.append(row)

    total = time.perf_counter() - t0
    import platform

    header = (
        f"{args.model}, {args.classes} classes, {args.size} px, {args.threads} threads, {os.cpu_count()} cores, "
        f"{args.clock} clock, {args.repeat} round(s), "
        f"torch {torch.__version__}, clean accuracy {clean_acc:.2f}, {datetime.date.today()}, total {total:.0f} s"
    )
    print()
    print(header)
    print(table(rows, sizes))
    notes = [f"{r.attack} / {r.library}: {'; '.join(r.notes)}" for r in rows if r.notes]
    if notes:
        print()
        for line in notes:
            print(f"- {line}")
    text, summ = summary(rows, attacks)
    print()
    print(text)
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "header": header,
                    "python": platform.python_version(),
                    "sizes": sizes,
                    "rows": [asdict(r) for r in rows],
                    "summary": summ,
                    "seconds": total,
                },
                indent=2,
                default=str,
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
