"""Progress of long work: rate-limited lines with rates and ETAs, quiet for quick steps, from every long loop."""

from __future__ import annotations

import pytest

from robustspec import progress
from robustspec.progress import Progress, duration


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def lines():
    seen: list[str] = []
    with progress.sink(seen.append):
        yield seen


def test_lines_at_most_every_few_seconds_with_rate_and_eta(lines: list[str]) -> None:
    clock = Clock()
    calls = []

    def info() -> str:
        calls.append(1)
        return "3 fooled"

    p = Progress(100, "attack pgd", unit="images", every_s=5, clock=clock)
    for _ in range(10):  # 10 images in 2.5 s: nothing due yet, and info is never formatted
        clock.now += 0.25
        p.update(1, info)
    assert lines == [] and calls == []
    clock.now += 2.5
    p.update(10, info)  # 20 images in 5 s
    assert lines == ["attack pgd: 20/100 images, 3 fooled (4 images/s, 5s, ETA 20s)"]
    clock.now += 1
    p.update(1)
    assert len(lines) == 1  # the next line is 5 s after the last one
    clock.now += 4
    p.tick("inside a batch")  # counts nothing, reports when due
    assert lines[-1] == "attack pgd: 21/100 images, inside a batch (2.1 images/s, 10s, ETA 38s)"
    p.done = 100
    clock.now += 10
    p.close("30 fooled")
    p.close()  # once
    assert lines[-1] == "attack pgd: 100/100 images, 30 fooled in 20s (5 images/s)" and len(lines) == 3


def test_a_quick_step_stays_quiet_unless_its_last_line_is_wanted(lines: list[str]) -> None:
    clock = Clock()
    with Progress(4, "corrupting", unit="images", every_s=5, clock=clock) as p:
        p.update(4)
    assert lines == []
    with Progress(4, "attack fgsm", unit="images", every_s=5, final="always", clock=clock) as p:
        clock.now += 2
        p.update(4)
    assert lines == ["attack fgsm: 4/4 images in 2s (2 images/s)"]
    with Progress(4, "slow", every_s=5, clock=clock) as p:  # a slow step says when it is done
        clock.now += 6
        p.update(4)
    assert lines[-1] == "slow: 4/4 in 6s (0.667/s)"
    with pytest.raises(ZeroDivisionError), Progress(4, "broken", every_s=0, clock=clock) as p:
        p.update(1)
        raise ZeroDivisionError
    assert not lines[-1].startswith("broken: 1/4 in")  # no summary of work that did not finish
    with Progress(4, "never", every_s=0, final="never", clock=clock):
        pass
    assert "never" not in lines[-1]


def test_a_callers_line_restarts_the_rate_limit_and_rates_below_one_per_tenth_of_a_second(lines: list[str]) -> None:
    clock = Clock()
    p = Progress(10, "training m", unit="batches", every_s=5, final="never", clock=clock)
    clock.now += 5
    p.line("training m: epoch 1/2")
    p.update(1)
    assert lines == ["training m: epoch 1/2"]
    clock.now += 15
    p.update(0)
    assert lines[-1] == "training m: 1/10 batches (3 batches/min, 20s, ETA 3m00s)"


def test_durations() -> None:
    assert [duration(s) for s in (0.4, 59, 61, 3599, 3600 * 2 + 61)] == ["0s", "59s", "1m01s", "59m59s", "2h01m"]


def test_progress_costs_one_clock_read_per_update() -> None:
    import time

    p = Progress(10**6, "x", every_s=3600)
    started = time.perf_counter()
    for _ in range(100_000):
        p.update(1)
    assert (time.perf_counter() - started) / 100_000 < 20e-6  # well under a microsecond on an idle core


def test_training_and_attacks_report_through_progress(lines: list[str], one_torch_thread) -> None:
    """Every epoch says its seconds and the ETA; an attack says what it attacked and how it went."""
    import torch

    from robustspec.attacks.evaluate import evaluate_attack
    from robustspec.data.synthetic import OfficeSynth
    from robustspec.models import Normalized, build_network
    from robustspec.spec.schema import TrainRecipe
    from robustspec.train import train_supervised

    data = OfficeSynth(classes=3, image_size=16, train_per_class=4, test_per_class=4).build_domain("amazon")
    torch.manual_seed(0)
    net = Normalized(build_network("resnet10-mini", 3))
    train_supervised(net, data["train"], TrainRecipe(epochs=2, batch_size=6), device=torch.device("cpu"), label="m")
    epochs = [line for line in lines if line.startswith("training m: epoch")]
    assert len(epochs) == 2 and "s/epoch" in epochs[0] and "ETA" in epochs[0] and "ETA" not in epochs[1], epochs
    lines.clear()
    test = data["test"]
    params = {"eps": 8 / 255, "queries": 20, "batch-size": 4}
    evaluate_attack(net, "square", params, test.images, test.labels, n=12, seed=0, device="cpu", label="attack sq on m")
    assert lines[0].startswith("attack sq on m (black-box): ") and "attacking them" in lines[0]
    assert lines[-1].startswith("attack sq on m: ") and " fooled in " in lines[-1], lines


def test_an_attack_reports_from_inside_a_long_batch(lines: list[str], monkeypatch, one_torch_thread) -> None:
    """A hook on the attacked model's forward passes: one Square batch of many queries is not silent."""
    import torch

    from robustspec import progress as progress_module
    from robustspec.attacks.evaluate import evaluate_attack
    from robustspec.models import Normalized, build_network

    monkeypatch.setattr(progress_module, "EVERY_S", 0.0)  # every call is due
    torch.manual_seed(0)
    net = Normalized(build_network("resnet10-mini", 3)).eval()
    images = torch.randint(0, 256, (6, 3, 16, 16), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        labels = net(images.float() / 255).argmax(1)  # every image classified "correctly": all attacked
    params = {"eps": 1 / 255, "queries": 5, "batch-size": 6}
    evaluate_attack(net, "square", params, images, labels, n=6, seed=0, device="cpu")
    inside = [line for line in lines if "0/6 images" in line and "forward passes" in line]
    assert inside and "batch 1/1: " in inside[-1] and "of at most 5" in inside[-1], lines


def test_progress_directories_of_killed_controllers_are_swept(tmp_path, monkeypatch) -> None:
    """A directory named after a process that no longer runs, over an hour old, goes; a live process's,
    a recent one and one of another name stay."""
    import os
    import tempfile
    import time

    from robustspec.pytest.progress import sweep_stale_directories

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    dead = tmp_path / "robustspec-progress-2147483647-abc123"  # no process has that number
    alive = tmp_path / f"robustspec-progress-{os.getpid()}-def456"
    recent = tmp_path / "robustspec-progress-2147483646-aaa111"
    other = tmp_path / "robustspec-progress-x"
    for d in (dead, alive, recent, other):
        d.mkdir()
    (dead / "gw0.log").write_text("[gw0] training\n")
    past = time.time() - 2 * 3600
    for d in (dead, alive, other):
        os.utime(d, (past, past))
    assert sweep_stale_directories() == [dead]
    assert not dead.exists() and alive.is_dir() and recent.is_dir() and other.is_dir()
