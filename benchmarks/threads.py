"""Do torch's thread counts change what robustspec builds? Train and evaluate with 1 and with N threads.

    python benchmarks/threads.py [--model resnet18] [--epochs 2] [--threads 1,2] [--train-per-class 100]
                                 [--json out.json]

Each thread count runs in a fresh interpreter (``torch.set_num_threads`` before any tensor op): the
network is built with the same seed, trained with :func:`robustspec.train.train_supervised` on office-synth
(10 classes, 32 px, the amazon domain) with the default recipe's optimizer and augmentation, then its
logits on the test split are computed in eval mode (batch 256), the forward and backward of one batch
are timed, and an FGSM-like input gradient is taken. The parent compares every state-dict tensor and the
logits bit for bit (max abs diff) against the first thread count and reports the wall time of each phase.

Run by hand, on an otherwise idle machine for the timings; results go to benchmarks/README.md (summarised in
docs/speed.md, "Threads").
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def child(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(args.child_threads)
    sys.path.insert(0, str(ROOT))
    from robustspec.data.synthetic import OfficeSynth
    from robustspec.models import Normalized, build_network
    from robustspec.spec.schema import TrainRecipe
    from robustspec.train import train_supervised

    ds = OfficeSynth(train_per_class=args.train_per_class, test_per_class=50)
    splits = ds.build_domain("amazon")
    torch.manual_seed(0)
    net = Normalized(build_network(args.model, len(ds.classes)))
    recipe = TrainRecipe.model_validate(
        {
            "epochs": args.epochs,
            "batch-size": 64,
            "optimizer": {"name": "adamw", "lr": 0.002, "weight-decay": 0.05},
            "schedule": "onecycle",
            "augment": {"crop-pad": 3, "flip": True, "jitter": 0.4},
        }
    )
    started = time.perf_counter()
    train_supervised(net, splits["train"], recipe, device=torch.device("cpu"))
    train_s = time.perf_counter() - started
    trained = {k: v.detach().clone() for k, v in net.state_dict().items()}
    x = splits["test"].images.float().div(255.0)
    started = time.perf_counter()
    with torch.no_grad():
        logits = torch.cat([net(x[i : i + 256]) for i in range(0, len(x), 256)])
    eval_s = time.perf_counter() - started
    # The same weights for every thread count (the first run's): does evaluation alone depend on threads?
    if args.child_reference:
        net.load_state_dict(torch.load(args.child_reference, weights_only=True)["state"])
    net.eval()
    with torch.no_grad():
        ref_logits = torch.cat([net(x[i : i + 256]) for i in range(0, len(x), 256)])
    xb = x[:128].clone().requires_grad_(True)
    loss = torch.nn.functional.cross_entropy(net(xb), splits["test"].labels[:128].long(), reduction="sum")
    (grad,) = torch.autograd.grad(loss, xb)
    torch.save(
        {
            "state": trained,
            "logits": logits,
            "ref_logits": ref_logits,
            "grad": grad,
            "train_s": train_s,
            "eval_s": eval_s,
            "threads": torch.get_num_threads(),
        },
        args.child_out,
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="resnet18")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--threads", default="1,2")
    p.add_argument("--train-per-class", type=int, default=100)
    p.add_argument("--json", default=None)
    p.add_argument("--child-threads", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--child-out", default=None, help=argparse.SUPPRESS)
    p.add_argument("--child-reference", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child_threads is not None:
        child(args)
        return
    import torch

    counts = [int(t) for t in args.threads.split(",")]
    runs = {}
    with tempfile.TemporaryDirectory() as tmp:
        for t in counts:
            out = os.path.join(tmp, f"{t}.pt")
            cmd = [sys.executable, __file__, "--child-threads", str(t), "--child-out", out]
            cmd += ["--model", args.model, "--epochs", str(args.epochs), "--train-per-class", str(args.train_per_class)]
            if t != counts[0]:
                cmd += ["--child-reference", os.path.join(tmp, f"{counts[0]}.pt")]
            subprocess.run(cmd, check=True)
            runs[t] = torch.load(out, weights_only=True)
    first = runs[counts[0]]
    report = {"model": args.model, "epochs": args.epochs, "load": os.getloadavg(), "runs": {}}
    for t, r in runs.items():
        diffs = [float((r["state"][k].double() - first["state"][k].double()).abs().max()) for k in first["state"]]
        identical = all(torch.equal(r["state"][k], first["state"][k]) for k in first["state"])
        report["runs"][t] = {
            "threads": r["threads"],
            "train_s": round(r["train_s"], 2),
            "eval_s": round(r["eval_s"], 3),
            "weights_identical": identical,
            "weights_max_abs_diff": max(diffs),
            "tensors_differing": sum(d > 0 for d in diffs),
            "logits_identical": torch.equal(r["logits"], first["logits"]),
            "logits_max_abs_diff": float((r["logits"] - first["logits"]).abs().max()),
            "argmax_disagreements": int((r["logits"].argmax(1) != first["logits"].argmax(1)).sum()),
            "eval_same_weights_identical": torch.equal(r["ref_logits"], first["ref_logits"]),
            "eval_same_weights_max_abs_diff": float((r["ref_logits"] - first["ref_logits"]).abs().max()),
            "input_grad_identical": torch.equal(r["grad"], first["grad"]),
        }
    text = json.dumps(report, indent=1)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
