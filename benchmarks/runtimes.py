"""Edge runtimes: latency of fp32 eager, int8 eager (x86), ExecuTorch XNNPACK int8 and ONNX Runtime fp32/int8.

    python benchmarks/runtimes.py [--models mobilenet_v2 resnet18 resnet50] [--sizes 64 224] [--batches 1 32]
                                  [--repeats 10] [--warmup 2] [--max-seconds 20] [--clock wall|cpu]
                                  [--quick] [--json out.json] [--from-json out.json]

Every network is ``build_network(arch, num_classes=10, params={})`` (the bare torchvision network, untrained:
weights do not change latency) in eval mode, fed a normalised input (what the runtimes' files take). The int8
variants are built with robustspec's own code paths, so the figures are those of what ships:

- **int8 eager x86** (ResNets only): ``quantize_net(net, "x86", calibrate)`` inside ``_quiet(), _engine("x86")``,
  as ``Quantize.apply`` calls it: torch's eager ``torch.ao.quantization`` int8 kernels, no runtime;
- **pt2e int8**: ``pt2e.prepare(net, example, "xnnpack", batches)`` then ``pt2e.convert`` (XNNPACK quantizer);
  its converted graph is exported for both runtimes;
- **ExecuTorch int8**: ``RUNTIMES.get("executorch")().export(converted, example, batch)``, a ``.pte`` lowered to
  XNNPACK at a fixed batch (so it is lowered once per batch size), run by ``executorch.runtime``;
- **ONNX Runtime fp32 / int8**: ``RUNTIMES.get("onnx")().export(net | converted, example, batch)``, one ``.onnx``
  per network and size (dynamic batch: it serves every batch size), QDQ for int8, run by an
  ``InferenceSession`` (CPU provider).

Calibration: ``--calibration`` random batches of 8 images (normal noise); the scales do not matter for
latency. Latency is the median of ``--repeats`` timed calls of ``program(x)`` after ``--warmup`` calls (fewer
when the calls of one measurement pass ``--max-seconds``; at least 3), ONE thread everywhere:
``torch.set_num_threads(1)``, ONNX Runtime sessions with one intra-op and one inter-op thread (robustspec's
own setting), ExecuTorch's threadpool reset to one thread (as robustspec's ``load`` does). A runtime's time includes robustspec's
``RuntimeProgram`` wrapper (a contiguous-float check and the numpy/tensor conversion), a few microseconds.

Each call is timed on the wall clock and on this process's CPU clock; ``--clock`` chooses the one the table
and the ratios use (both are in the JSON). With one thread the CPU clock leaves out the time the process
waits for a core, so on a shared machine it is the steadier estimate of the latency on an idle core.

Each runtime's figure is also given as a ratio to fp32 eager of the same network, size and batch; the goal
(a real runtime's int8 at most 0.2x fp32 eager) is marked per cell. Export seconds (pt2e prepare+calibrate
and convert, ONNX export, ExecuTorch lowering) and file sizes are in a second table. A configuration that
fails prints its error in its cell and the run continues.

Run by hand on as idle a machine as possible; results go to benchmarks/README.md (summarised in docs/speed.md,
"Edge runtimes"), never into a timed test.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import datetime
import json
import os
import platform
import statistics
import sys
import time
import traceback
import warnings
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from robustspec.compress import pt2e  # noqa: E402
from robustspec.compress.quantize import _engine, _quiet, quantize_net  # noqa: E402
from robustspec.models import build_network  # noqa: E402
from robustspec.runtimes import RUNTIMES  # noqa: E402

MODELS = ["mobilenet_v2", "resnet18", "resnet50"]
SIZES = [64, 224]
BATCHES = [1, 32]
QUICK = {"models": ["mobilenet_v2", "resnet18"], "sizes": [64], "batches": [1, 32]}
#: The columns of the latency table, fp32 eager first (the reference of every ratio).
RUNTIME_NAMES = ["fp32 eager", "int8 eager x86", "ExecuTorch int8", "ONNX RT fp32", "ONNX RT int8"]
#: The goal of the issue: int8 on a real runtime at most this fraction of fp32 eager.
GOAL = 0.2
LIBRARIES = ["torch", "torchao", "executorch", "onnxruntime", "onnx", "onnxscript"]


def _version(dist: str) -> str:
    try:
        return version(dist)
    except PackageNotFoundError:
        return "not installed"


def _error(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:300]}"


def single_thread() -> None:
    """One thread in torch and in ExecuTorch's threadpool (robustspec's ExecuTorch ``load`` also sets it, and
    its ONNX Runtime sessions have one thread of each kind)."""
    torch.set_num_threads(1)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set (interop threads started)
        pass
    try:
        from executorch.extension.pybindings import portable_lib

        portable_lib._unsafe_reset_threadpool(1)
    except Exception as exc:  # noqa: BLE001 - an experimental API; report and go on
        print(f"warning: could not set ExecuTorch's threadpool to one thread ({_error(exc)})")


def adapt_batchnorm(net: nn.Module, batches: list[torch.Tensor]) -> None:
    """BatchNorm statistics of ``batches`` (cumulative averages), then eval mode.

    An untrained torchvision network has running statistics of 0 and 1 that do not fit its activations:
    MobileNetV2's logits are then about 1e-9, which int8 rounds to zero. With statistics of real
    activations the logits are of order 1 and the int8 outputs can be compared with fp32 (a sanity check
    in the JSON); the latency is the same.
    """
    for m in net.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None
    net.train()
    with torch.no_grad():
        for batch in batches:
            net(batch)
    net.eval()


def measure(fn: Callable[[], Any], repeats: int, warmup: int, max_seconds: float) -> dict[str, Any]:
    """Median wall and CPU milliseconds of ``fn()`` over ``repeats`` calls after ``warmup`` calls."""
    start = time.perf_counter()
    with torch.inference_mode():
        for _ in range(warmup):
            fn()
        wall: list[float] = []
        cpu: list[float] = []
        for i in range(repeats):
            w, c = time.perf_counter(), time.process_time()
            fn()
            wall.append(1e3 * (time.perf_counter() - w))
            cpu.append(1e3 * (time.process_time() - c))
            if i + 1 >= 3 and time.perf_counter() - start > max_seconds:
                break
    return {
        "wall_ms": statistics.median(wall),
        "cpu_ms": statistics.median(cpu),
        "calls": len(wall),
        "wall_all_ms": [round(t, 3) for t in wall],
    }


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def bench_network(arch: str, size: int, batches: list[int], args: argparse.Namespace) -> list[dict[str, Any]]:
    """Every runtime of one network at one size, for each batch size: one result row per batch."""
    torch.manual_seed(0)
    net = build_network(arch, num_classes=10, params={}).eval()
    g = torch.Generator().manual_seed(1)
    example = torch.randn(4, 3, size, size, generator=g)
    calibration = [torch.randn(8, 3, size, size, generator=g) for _ in range(args.calibration)]
    inputs = {b: torch.randn(b, 3, size, size, generator=g) for b in batches}
    adapt_batchnorm(net, calibration)
    rows = [{"model": arch, "size": size, "batch": b, "results": {}, "export": {}} for b in batches]

    def everywhere(name: str, value: Any) -> None:
        for row in rows:
            row["export"][name] = value

    def failed(name: str, exc: BaseException) -> None:
        print(f"  {arch} {size}px {name}: {_error(exc)}", flush=True)
        if args.verbose:
            traceback.print_exc()
        for row in rows:
            row["results"][name] = {"error": _error(exc)}

    # Programs to time, by runtime name (each serves every batch size; ExecuTorch's are per batch, below).
    programs: dict[str, Callable[[torch.Tensor], Any]] = {"fp32 eager": net}

    if arch.startswith("resnet"):
        try:

            def calibrate(q: nn.Module) -> None:
                with torch.inference_mode():
                    for batch in calibration:
                        q(batch)

            def build_eager() -> nn.Module:
                with _quiet(), _engine("x86"):
                    return quantize_net(copy.deepcopy(net), "x86", calibrate)

            q, seconds = timed(build_eager)
            everywhere("int8 eager x86 s", round(seconds, 1))
            programs["int8 eager x86"] = q
        except Exception as exc:  # noqa: BLE001
            failed("int8 eager x86", exc)
    else:
        for row in rows:
            row["results"]["int8 eager x86"] = {"error": "n/a: torch's eager int8 flow is for ResNets"}

    converted = None
    try:
        prepared, seconds_prepare = timed(
            lambda: pt2e.prepare(copy.deepcopy(net).eval(), example, "xnnpack", iter(calibration))
        )
        converted, seconds_convert = timed(lambda: pt2e.convert(prepared))
        everywhere("pt2e prepare+calibrate s", round(seconds_prepare, 1))
        everywhere("pt2e convert s", round(seconds_convert, 1))
    except Exception as exc:  # noqa: BLE001
        failed("ExecuTorch int8", exc)
        failed("ONNX RT int8", exc)

    onnx = RUNTIMES.get("onnx")()
    for name, graph, quantized in (("ONNX RT fp32", net, False), ("ONNX RT int8", converted, True)):
        if graph is None:
            continue
        try:
            data, seconds = timed(lambda graph=graph: onnx.export(graph, example, max(batches)))
            program = onnx.load(data, quantized=quantized, batch=max(batches))
            everywhere(f"{name} export s", round(seconds, 1))
            everywhere(f"{name} MB", round(len(data) / 1e6, 2))
            programs[name] = program
        except Exception as exc:  # noqa: BLE001
            failed(name, exc)

    for row, b in zip(rows, batches):
        if converted is None:
            break
        executorch = RUNTIMES.get("executorch")()
        try:
            data, seconds = timed(lambda b=b, executorch=executorch: executorch.export(converted, example, b))
            program = executorch.load(data, quantized=True, batch=b)
            row["export"]["ExecuTorch int8 lowering s"] = round(seconds, 1)
            row["export"]["ExecuTorch int8 MB"] = round(len(data) / 1e6, 2)
            row["_executorch"] = program
            print(f"  {arch} {size}px batch {b}: ExecuTorch lowered in {seconds:.1f} s", flush=True)
        except Exception as exc:  # noqa: BLE001
            print(f"  {arch} {size}px batch {b} ExecuTorch int8: {_error(exc)}", flush=True)
            row["results"]["ExecuTorch int8"] = {"error": _error(exc)}

    for row, b in zip(rows, batches):
        x = inputs[b]
        current = dict(programs)
        if "_executorch" in row:
            current["ExecuTorch int8"] = row.pop("_executorch")
        with torch.inference_mode():
            reference = net(x)
        for name in RUNTIME_NAMES:
            if name not in current:
                continue
            program = current[name]
            # The eager int8 modules run in the engine their weights were packed for.
            context = (lambda: _engine("x86")) if name == "int8 eager x86" else contextlib.nullcontext
            try:
                with _quiet(), context():
                    call = lambda program=program, x=x: program(x)
                    result = measure(call, args.repeats, args.warmup, args.max_seconds)
                    with torch.inference_mode():
                        out = call()
                result["max_abs_diff_vs_fp32"] = float((out.float() - reference).abs().max())
                result["argmax_agreement"] = float((out.argmax(1) == reference.argmax(1)).float().mean())
                row["results"][name] = result
                print(
                    f"  {arch} {size}px batch {b} {name:<16} {result['wall_ms']:9.2f} ms wall "
                    f"{result['cpu_ms']:9.2f} ms cpu ({result['calls']} calls)",
                    flush=True,
                )
            except Exception as exc:  # noqa: BLE001
                print(f"  {arch} {size}px batch {b} {name}: {_error(exc)}", flush=True)
                row["results"][name] = {"error": _error(exc)}
    return rows


def ratios(rows: list[dict[str, Any]], clock: str) -> None:
    key = f"{clock}_ms"
    for row in rows:
        ref = row["results"].get("fp32 eager", {}).get(key)
        for name, result in row["results"].items():
            if key in result and ref:
                result["ratio"] = result[key] / ref
                result["meets_goal"] = name != "fp32 eager" and result["ratio"] <= GOAL


def cell(name: str, result: dict[str, Any] | None, clock: str) -> str:
    if result is None:
        return "–"
    if "error" in result:
        return "n/a" if result["error"].startswith("n/a") else f"error: {result['error'][:60]}"
    ms = result[f"{clock}_ms"]
    text = f"{ms:.1f}" if ms >= 10 else f"{ms:.2f}"
    if name != "fp32 eager" and "ratio" in result:
        text += f" ({result['ratio']:.2f}×{' ✓' if result['meets_goal'] else ''})"
    return text


def tables(rows: list[dict[str, Any]], clock: str) -> str:
    lines = [
        f"| model | px | batch | {' | '.join(f'{n} ms' for n in RUNTIME_NAMES)} | ≤ {GOAL}× fp32 eager |",
        "|---|---|---|" + "---|" * (len(RUNTIME_NAMES) + 1),
    ]
    for row in rows:
        res = row["results"]
        meets = [n for n in RUNTIME_NAMES[1:] if res.get(n, {}).get("meets_goal")]
        cells = [cell(n, res.get(n), clock) for n in RUNTIME_NAMES]
        lines.append(
            f"| {row['model']} | {row['size']} | {row['batch']} | {' | '.join(cells)} | "
            f"{', '.join(meets) if meets else 'none'} |"
        )
    columns = [
        "int8 eager x86 s",
        "pt2e prepare+calibrate s",
        "pt2e convert s",
        "ONNX RT fp32 export s",
        "ONNX RT int8 export s",
        "ExecuTorch int8 lowering s",
        "ONNX RT fp32 MB",
        "ONNX RT int8 MB",
        "ExecuTorch int8 MB",
    ]
    lines += ["", f"| model | px | batch | {' | '.join(columns)} |", "|---|---|---|" + "---|" * len(columns)]
    for row in rows:
        cells = [str(row["export"].get(c, "–")) for c in columns]
        lines.append(f"| {row['model']} | {row['size']} | {row['batch']} | {' | '.join(cells)} |")
    return "\n".join(lines)


def save(
    args: argparse.Namespace, rows: list[dict[str, Any]], header: str, command: str, versions: dict, seconds: float
) -> None:
    if not args.json:
        return
    text = json.dumps(
        {
            "header": header,
            "command": command,
            "python": platform.python_version(),
            "versions": versions,
            "clock": args.clock,
            "goal": GOAL,
            "rows": rows,
            "seconds": seconds,
        },
        indent=2,
        default=str,
    )
    Path(args.json).write_text(text)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=MODELS)
    ap.add_argument("--sizes", type=int, nargs="+", default=SIZES)
    ap.add_argument("--batches", type=int, nargs="+", default=BATCHES)
    ap.add_argument(
        "--quick",
        action="store_true",
        help="mobilenet_v2 and resnet18 at 64 px, batch 1 and 32 (overrides --models, --sizes, --batches)",
    )
    ap.add_argument("--repeats", type=int, default=10, help="timed calls per measurement (median)")
    ap.add_argument("--warmup", type=int, default=2, help="untimed calls before them")
    ap.add_argument(
        "--max-seconds",
        type=float,
        default=20.0,
        help="stop a measurement's timed calls after this many seconds (at least 3 calls)",
    )
    ap.add_argument("--calibration", type=int, default=4, help="random batches of 8 images to calibrate int8")
    ap.add_argument(
        "--clock",
        choices=["wall", "cpu"],
        default="wall",
        help="the clock of the table and the ratios: wall, or this process's CPU time (steadier on a shared "
        "machine with one thread: time spent descheduled is not counted)",
    )
    ap.add_argument("--json", default=None, help="also write the results here")
    ap.add_argument("--verbose", action="store_true", help="print tracebacks of failures")
    ap.add_argument(
        "--from-json", default=None, help="measure nothing: print the tables of a saved --json run with --clock"
    )
    args = ap.parse_args()
    if args.from_json:
        saved = json.loads(Path(args.from_json).read_text())
        ratios(saved["rows"], args.clock)
        print(f"{saved['command']}\n{saved['header']}\n(table: {args.clock} clock)")
        print(tables(saved["rows"], args.clock))
        return 0
    if args.quick:
        args.models, args.sizes, args.batches = QUICK["models"], QUICK["sizes"], QUICK["batches"]
    args.batches = sorted(set(args.batches))

    single_thread()
    warnings.filterwarnings("ignore")
    versions = {lib: _version(lib) for lib in LIBRARIES}
    command = " ".join(["python", "benchmarks/runtimes.py", *sys.argv[1:]])
    print(f"{command}\n{os.cpu_count()} cores; " + ", ".join(f"{k} {v}" for k, v in versions.items()), flush=True)

    t0 = time.perf_counter()
    rows: list[dict[str, Any]] = []
    for arch in args.models:
        for size in args.sizes:
            t = time.perf_counter()
            try:
                rows += bench_network(arch, size, args.batches, args)
            except Exception as exc:  # noqa: BLE001 - e.g. the network cannot be built: one row says why
                print(f"  {arch} {size}px: {_error(exc)}", flush=True)
                for b in args.batches:
                    rows.append(
                        {
                            "model": arch,
                            "size": size,
                            "batch": b,
                            "results": {"fp32 eager": {"error": _error(exc)}},
                            "export": {},
                        }
                    )
            print(f"{arch} {size}px done in {time.perf_counter() - t:.0f} s", flush=True)
            # Saved after each network, so a run stopped early keeps what it measured (--from-json prints it).
            save(args, rows, "partial run", command, versions, time.perf_counter() - t0)
    total = time.perf_counter() - t0
    ratios(rows, args.clock)

    header = (
        f"{args.clock} clock, median of up to {args.repeats} calls after {args.warmup} warm-up, 1 thread, "
        f"{os.cpu_count()} cores, {datetime.date.today()}, total {total:.0f} s; "
        + ", ".join(f"{k} {v}" for k, v in versions.items())
    )
    print()
    print(header)
    print(tables(rows, args.clock))
    errors = [
        f"{r['model']} {r['size']} px batch {r['batch']} / {n}: {res['error']}"
        for r in rows
        for n, res in r["results"].items()
        if "error" in res and not res["error"].startswith("n/a")
    ]
    if errors:
        print()
        for line in errors:
            print(f"- {line}")
    save(args, rows, header, command, versions, total)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
