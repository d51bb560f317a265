"""Cold and warm wall time of the main suite at several -n, and how often each artifact was built.

    python benchmarks/suite_time.py [--suite suites/office.yaml] [--workers 1 2 8] [--json out.json]

Each worker count gets a fresh, empty store (cold run), then runs again on that store (warm run). The
build log of the store (builds.jsonl) tells how many times each artifact was built: the target is once.
Run by hand on an idle machine; results go to benchmarks/README.md, never into a timed test.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(suite: str, workers: int, store: Path) -> tuple[float, int, str]:
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        suite,
        "-q",
        "-p",
        "no:cacheprovider",
        "--robustspec-quiet",
        f"--robustspec-store={store}",
    ]
    if workers > 1:
        cmd += ["-n", str(workers)]
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    tail = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else proc.stderr[-300:]
    return seconds, proc.returncode, tail


def builds(store: Path) -> collections.Counter:
    log = store / "builds.jsonl"
    counts: collections.Counter = collections.Counter()
    if log.exists():
        for line in log.read_text().splitlines():
            counts[json.loads(line)["key"]] += 1
    return counts


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--suite", default="suites/office.yaml")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2, 8])
    ap.add_argument("--json", default=None, help="also write the results here")
    args = ap.parse_args()
    results = []
    print(f"suite {args.suite}; {os.cpu_count()} cores")
    print(f"{'-n':>3}  {'cold s':>8}  {'warm s':>8}  {'artifacts':>9}  {'max builds/artifact':>19}  result")
    for n in args.workers:
        with tempfile.TemporaryDirectory(prefix="robustspec-bench-") as tmp:
            store = Path(tmp) / "store"
            cold, rc1, tail1 = run(args.suite, n, store)
            warm, rc2, tail2 = run(args.suite, n, store)
            counts = builds(store)
            kinds = collections.Counter(k.split("-")[0] for k in counts)
            row = {
                "workers": n,
                "cold_seconds": round(cold, 1),
                "warm_seconds": round(warm, 1),
                "artifacts": len(counts),
                "max_builds_per_artifact": max(counts.values(), default=0),
                "artifacts_by_kind": dict(kinds),
                "exit_codes": [rc1, rc2],
                "summary": tail2,
            }
            results.append(row)
            print(
                f"{n:>3}  {cold:>8.1f}  {warm:>8.1f}  {len(counts):>9}  {row['max_builds_per_artifact']:>19}  {tail2}"
            )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0 if all(r["exit_codes"] == [0, 0] and r["max_builds_per_artifact"] == 1 for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
