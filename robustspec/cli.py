"""The ``robustspec`` command: check suite files, export their JSON Schema, look after the artifact store,
compare results files and turn them into reports.

Examples::

    robustspec validate suites/quick.yaml          # one suite: its errors, or "ok: ... (N models, M checks)"
    robustspec validate suites/                     # every *.yaml / *.yml below it (specs/ directories skipped)
    robustspec validate --specs shared/specs suites/office.yaml

    robustspec schema -o .vscode/robustspec.schema.json
    # then, in .vscode/settings.json:
    #   "yaml.schemas": {".vscode/robustspec.schema.json": "suites/*.yaml"}

    robustspec cache path                           # where artifacts live
    robustspec cache list --store /scratch/store    # kind, key, bytes, created, last used, description
    robustspec cache prune --unused-for 7d          # delete what no run used for 7 days (but their parents)
    robustspec cache prune --unused-for 2h --dry-run   # only list what would go
    robustspec cache clear                          # delete every artifact (no question asked)

    robustspec compare baseline/results.json .robustspec/results.json   # markdown; exit 1 on a regression
    robustspec merge results.json shard-1.json shard-2.json shard-3.json  # pytest --robustspec-shard I/3's
    robustspec report .robustspec/results.json -o report.html          # and report.md next to it
    robustspec research -n 2 -o research.md         # run Table 1 and 2; tables and which trends hold
    robustspec research --results .robustspec/results.json             # the same from a results file

    robustspec --version

The store is ``--store DIR``, else ``$ROBUSTSPEC_STORE``, else the ini key ``robustspec_store`` (relative to
pytest's rootdir), else ``.robustspec/store`` under the rootdir: the same resolution as the pytest plugin
(:mod:`robustspec.config`), so ``robustspec cache`` looks where ``pytest`` builds. For a store at a URL
(``s3://bucket/prefix``), ``list`` shows the remote artifacts, ``prune`` and ``clear`` act on the local
cache (``clear --remote`` empties the remote store too).

``compare`` exits 0 without regressions, 1 with one, 2 on usage errors (a file that is not a results file).
``merge`` exits 0 when it wrote the merged file, 2 when it cannot (an id with two different records, shards
split differently, a file that is not a results file).
``validate`` exits 0 when every file is valid, 1 when any is not, and 2 on usage errors (a path that does
not exist, no suite file found). ``research`` exits 1 when a check of its run failed (the tables still
print what was measured) and 2 on usage errors; a research trend that does not hold is a finding, not a
failure. Expected problems are reported as one line each, never as a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .config import DEFAULT_STORE, STORE_ENV
from .errors import UsageError

__all__ = ["main", "suite_json_schema", "find_suite_files"]

_SUITE_SUFFIXES = (".yaml", ".yml")


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("robustspec")
    except Exception:  # noqa: BLE001 - not installed as a distribution (running from a source tree)
        return "unknown"


# --------------------------------------------------------------------------- validate


def find_suite_files(paths: Sequence[str | os.PathLike[str]]) -> list[Path]:
    """Expand files and directories into suite files: directories give every *.yaml / *.yml below them,
    sorted, except inside directories named ``specs`` (building blocks, not suites)."""
    files: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            found = sorted(
                f
                for f in p.rglob("*")
                if f.suffix in _SUITE_SUFFIXES and f.is_file() and "specs" not in f.relative_to(p).parts[:-1]
            )
            if not found:
                raise UsageError(f"no suite files (*.yaml, *.yml) found in directory {str(p)!r}")
            files.extend(found)
        elif p.is_file():
            files.append(p)
        elif p.exists():
            raise UsageError(f"not a file or directory: {str(p)!r}")
        else:
            raise UsageError(f"no such file or directory: {str(p)!r}")
    return files


def _cmd_validate(args: argparse.Namespace) -> int:
    specs = args.specs
    if specs is not None and not Path(specs).is_dir():
        raise UsageError(f"--specs: no such directory: {specs!r}")
    files = find_suite_files(args.paths)
    # Imported only now: the loader is the heavier part (pydantic models of every component; no torch).
    from .errors import RobustSpecError, SpecErrors
    from .plan import plan_suite
    from .spec.loader import load_suite

    bad = 0
    for f in files:
        try:
            loaded = load_suite(f, specs_dir=specs)
            checks = plan_suite(loaded)
        except SpecErrors as exc:
            bad += 1
            for err in exc.errors:
                print(err)
            continue
        except RobustSpecError as exc:
            bad += 1
            print(f"{f}: error: {_one_line(exc)}")
            continue
        n_models = len(loaded.suite.models)
        print(
            f"ok: {f} ({n_models} model{'s' if n_models != 1 else ''}, "
            f"{len(checks)} check{'s' if len(checks) != 1 else ''})"
        )
    if len(files) > 1:
        summary = f"{len(files) - bad} of {len(files)} suite files valid"
        print(summary if not bad else f"{summary}; {bad} with errors")
    return 1 if bad else 0


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


# --------------------------------------------------------------------------- schema


def suite_json_schema() -> dict[str, Any]:
    """The JSON Schema of suite files (generated from the pydantic models; see robustspec.spec.json_schema)."""
    from .spec.json_schema import suite_json_schema as generate

    return generate()


def _cmd_schema(args: argparse.Namespace) -> int:
    _write_text(args.output, json.dumps(suite_json_schema(), indent=2) + "\n")
    if args.output not in (None, "-"):
        print(f"wrote {args.output}", file=sys.stderr)
    return 0


# --------------------------------------------------------------------------- cache


def store_root(option: str | None) -> Path | str:
    """``--store``, else ``$ROBUSTSPEC_STORE``, else ini ``robustspec_store``, else ``.robustspec/store`` under
    pytest's rootdir (found from the working directory as pytest finds it); absolute, or a URL."""
    from .config import STORE_INI, find_rootdir, store_location

    root = find_rootdir()
    ini = root.options.get(STORE_INI)
    return store_location(option, os.environ, str(ini) if ini else None, root.path)


def open_store(option: str | None, cache: str | None = None) -> Any:
    """The store as the plugin opens it (:func:`robustspec.config.open_store`), from the working directory."""
    from .config import CACHE_INI, STORE_INI, find_rootdir
    from .config import open_store as resolve

    root = find_rootdir()
    ini, cache_ini = root.options.get(STORE_INI), root.options.get(CACHE_INI)
    return resolve(
        option,
        os.environ,
        str(ini) if ini else None,
        root.path,
        cache=cache,
        cache_ini=str(cache_ini) if cache_ini else None,
    )


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"  # pragma: no cover - unreachable


def _table(rows: list[list[str]], right: set[int]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for r in rows:
        cells = [c.rjust(widths[i]) if i in right else c.ljust(widths[i]) for i, c in enumerate(r)]
        lines.append("  ".join(cells).rstrip())
    return lines


_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def duration(text: str) -> float:
    """``30m``, ``12h``, ``7d``, ``90s`` (or ``0``) in seconds; argparse's type for ``--unused-for``."""
    t = text.strip().lower()
    number, unit = (t[:-1], t[-1]) if t[-1:] in _DURATION_UNITS else (t, "")
    try:
        value = float(number)
    except ValueError:
        value = -1.0
    if not 0 <= value < float("inf") or (unit == "" and value != 0):  # also refuses nan
        raise argparse.ArgumentTypeError(f"expected a duration such as 30m, 12h or 7d, got {text!r}")
    return value * _DURATION_UNITS.get(unit, 1)


def _when(t: object) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t)) if isinstance(t, (int, float)) else "-"


def _prune(store: Any, args: argparse.Namespace) -> int:
    if args.unused_for is None:
        print(
            "robustspec cache prune: give --unused-for, e.g. --unused-for 7d (artifacts no run has used for 7 days)",
            file=sys.stderr,
        )
        return 2
    gone = store.prune(args.unused_for, dry_run=args.dry_run)
    for e in gone:
        print(
            f"{'would remove' if args.dry_run else 'removed'}  {e['key']}  {_human(e['bytes'])}  "
            f"last used {_when(e['last_used'])}  {e['describe'] or '-'}"
        )
    size = _human(sum(e["bytes"] for e in gone))
    verb = "would remove" if args.dry_run else "removed"
    # Lock and temp files that builds killed over an hour ago left, which no process holds.
    leftovers = store.sweep(dry_run=args.dry_run)
    for path in leftovers:
        print(f"{verb}  {path}  (left by a killed build)")
    left = f", and {len(leftovers)} lock or temp file{'s' if len(leftovers) != 1 else ''} of killed builds"
    artifacts = f"{len(gone)} artifact{'s' if len(gone) != 1 else ''}"
    where = f"the local cache {store.cache.root}" if hasattr(store, "cache") else store.root
    print(f"{verb} {artifacts} ({size}) from {where}{left if leftovers else ''}")
    if hasattr(store, "cache"):
        print(f"{store.root} itself is left as it is (other machines' uses are not recorded there)")
    return 0


def _cmd_cache(args: argparse.Namespace) -> int:
    store = open_store(args.store, args.cache)
    remote = hasattr(store, "cache")  # a store at a URL, with its local cache
    root = store.root
    if args.remote and not remote:
        raise UsageError(f"--remote: the store {root} is a directory, not a URL")
    if args.action == "path":
        print(root)
        if remote:
            print(f"cache: {store.cache.root}")
        return 0
    if args.action == "clear":
        if args.remote:
            n = store.clear_remote()
            print(f"removed {n} artifact{'s' if n != 1 else ''} from {root} (and every blob, build record and lease)")
        n = store.clear()
        where = f"the local cache {store.cache.root}" if remote else root
        print(f"removed {n} artifact{'s' if n != 1 else ''} from {where}")
        if remote and not args.remote:
            print(f"{root} itself is left as it is (--remote empties it)")
        return 0
    if args.action == "prune":
        return _prune(store, args)
    entries = store.entries()
    if not entries:
        print(f"no artifacts in {root}")
        return 0
    rows = [["KIND", "KEY", "BYTES", "CREATED", "LAST-USED", "DESCRIBE"]]
    total = 0
    for e in entries:
        size = int(e.get("bytes", 0))
        total += size
        rows.append(
            [
                str(e.get("kind", "")),
                str(e.get("key", "")),
                str(size),
                _when(e.get("created")),
                _when(e["last_used"] if "last_used" in e else store.last_used(str(e.get("key", "")))),
                str(e.get("describe") or "-"),
            ]
        )
    for line in _table(rows, right={2}):
        print(line)
    n = len(entries)
    print(f"total: {n} artifact{'s' if n != 1 else ''}, {total} bytes ({_human(total)}) in {root}")
    if remote:
        cached = sum(1 for e in entries if e.get("cached"))
        print(f"{cached} of them in the local cache {store.cache.root}")
    return 0


# --------------------------------------------------------------------------- compare, report


def _load_results(path: str) -> dict[str, Any]:
    from .report.results import ResultsError, load_document

    try:
        return load_document(path)
    except ResultsError as exc:
        raise UsageError(str(exc)) from None


def _load_run(name: str, history: str | None) -> dict[str, Any]:
    """A results file, or a kept run of ``history`` by its name when no such file exists."""
    if history is None or Path(name).is_file():
        return _load_results(name)
    from .report.history import resolve_run
    from .report.results import ResultsError

    try:
        return _load_results(str(resolve_run(history, name)))
    except ResultsError as exc:
        raise UsageError(str(exc)) from None


def _write_text(output: str | None, text: str) -> None:
    if output in (None, "-"):
        sys.stdout.write(text)
        return
    out = Path(output)
    try:
        if out.parent != Path():
            out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot write {str(out)!r}: {exc.strerror or exc}") from None


def _cmd_compare(args: argparse.Namespace) -> int:
    from .report.compare import compare_documents

    if not args.tolerance >= 0.0:
        raise UsageError(f"--tolerance must be >= 0, got {args.tolerance}")
    old, new = _load_run(args.old, args.history), _load_run(args.new, args.history)
    comparison = compare_documents(old, new, args.tolerance)
    _write_text(args.output, comparison.markdown())
    if args.output not in (None, "-"):
        print(comparison.headline(), file=sys.stderr)
    return 1 if comparison.regressions else 0


def _cmd_merge(args: argparse.Namespace) -> int:
    from .report.merge import merge_documents
    from .report.results import ResultsError, write_document

    docs = [(path, _load_results(path)) for path in args.files]
    try:
        merged, warnings = merge_documents(docs)
    except ResultsError as exc:
        raise UsageError(str(exc)) from None
    for line in warnings:
        print(f"robustspec merge: warning: {line}", file=sys.stderr)
    try:
        write_document(Path(args.output), merged)
    except OSError as exc:
        raise UsageError(f"cannot write {args.output!r}: {exc.strerror or exc}") from None
    n = merged["summary"]["items"]
    print(
        f"merged {n} item{'s' if n != 1 else ''} from {len(docs)} file{'s' if len(docs) != 1 else ''} into {args.output}"
    )
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    out = Path(args.output)
    if out.suffix.lower() in (".md", ".markdown"):
        raise UsageError(f"-o names the HTML file (the markdown goes next to it): got {str(out)!r}")
    doc = _load_results(args.results)
    from .report.html import has_plots, write_report

    if not has_plots():  # matplotlib is the extra robustspec[report]
        print(
            "robustspec report: matplotlib is not installed: tables only, no plots "
            "(pip install 'robustspec[report]' for them)",
            file=sys.stderr,
        )
    extra = []
    if args.history is not None:
        from .report.history import kept_runs
        from .report.trends import trends_section

        runs = kept_runs(args.history)
        if not runs:
            raise UsageError(f"--history {args.history}: no kept runs (pytest --robustspec-history {args.history})")
        extra.append(trends_section(runs))
    for frontier_file in args.frontier:
        import json

        from .report.frontier import frontier_section

        try:
            extra.append(frontier_section(json.loads(Path(frontier_file).read_text(encoding="utf-8"))))
        except (OSError, ValueError) as exc:
            raise UsageError(f"--frontier {frontier_file}: {exc}") from None
    try:
        html_path, md_path = write_report(
            doc, out, title=args.title, extra_sections=extra, base=Path(args.results).absolute().parent
        )
    except OSError as exc:
        raise UsageError(f"cannot write {str(out)!r}: {exc.strerror or exc}") from None
    print(f"wrote {html_path} and {md_path}")
    return 0


def _cmd_research(args: argparse.Namespace) -> int:
    import tempfile

    from .report import research as rs

    status = 0
    if args.results is not None:
        if args.deep or args.full or args.workers is not None or args.store is not None:
            raise UsageError("--results reads an existing results file: --deep, --full, -n and --store run suites")
        doc = _load_results(args.results)
    else:
        suites = rs.suite_paths(Path.cwd(), deep=args.deep, full=args.full)
        missing = [str(s.relative_to(Path.cwd())) for s in suites if not s.is_file()]
        if missing:
            raise UsageError(
                f"no {', '.join(missing)} in the current directory (run it from the project root, "
                "or read a results file with --results FILE)"
            )
        with tempfile.TemporaryDirectory(prefix="robustspec-research-") as tmp:
            results = Path(args.save_results) if args.save_results else Path(tmp) / "results.json"
            cmd = rs.pytest_command([s.relative_to(Path.cwd()) for s in suites], results, args.workers, args.store)
            shown = ["python", *cmd[1:]] if cmd[0] == sys.executable else cmd
            print("running: " + " ".join(shown), file=sys.stderr, flush=True)
            code = rs.run_suites(cmd)
            if not results.is_file():
                raise UsageError(f"pytest exited with status {code} and wrote no results file")
            doc = _load_results(str(results))
        if code not in (0, 1):
            raise UsageError(f"pytest exited with status {code}")
        status = 1 if code == 1 else 0
        print()
    report = rs.research(doc)
    sys.stdout.write(rs.render_text(report))
    if args.output not in (None, "-"):
        _write_text(args.output, rs.render_markdown(report))
        print(f"wrote {args.output}", file=sys.stderr)
    if status:
        print("some checks failed: the tables show what was measured", file=sys.stderr)
    return status


# --------------------------------------------------------------------------- search


def _cmd_search(args: argparse.Namespace) -> int:
    """The smallest variant along a budget axis that passes the suite's gates (robustspec.frontier)."""
    import json

    from .frontier import frontier
    from .progress import report, sink
    from .spec.loader import load_suite
    from .workspace import Workspace

    loaded = load_suite(args.suite)
    points = None
    if args.points:
        from .spec.schema import parse_count

        try:
            points = [float(parse_count(p)) if p.strip()[-1:] in "kKmMgG" else float(p) for p in args.points.split(",")]
        except ValueError as exc:
            raise UsageError(f"--points: {exc}") from None
    store = open_store(args.store, args.cache)
    ws = Workspace(store, device=args.device, build_threads=args.build_threads)
    with sink(lambda line: print(line, file=sys.stderr, flush=True) if args.verbose else None):
        result = frontier(ws, loaded, args.model, args.variant, points=points, count=args.count, progress=report)
    sys.stdout.write(result.render())
    if args.json:
        _write_text(args.json, json.dumps(result.as_dict(), indent=2) + "\n")
        print(f"wrote {args.json}", file=sys.stderr)
    return 0 if result.smallest is not None else 1


# --------------------------------------------------------------------------- main


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="robustspec",
        description="Check robustspec suite files, export their JSON Schema, manage the artifact store, compare results and report them.",
        epilog="Run suites with pytest: pytest suites/quick.yaml",
    )
    parser.add_argument("--version", action="version", version=f"robustspec {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("validate", help="check suite files and report every problem as file:line:col")
    p.add_argument("paths", nargs="+", metavar="PATH", help="suite files or directories of them")
    p.add_argument(
        "--specs",
        metavar="DIR",
        default=None,
        help="the specs/ directory of named building blocks (default: the nearest specs/ above each file)",
    )
    p.set_defaults(func=_cmd_validate)

    p = sub.add_parser("schema", help="print the JSON Schema of suite files (for editors)")
    p.add_argument("-o", "--output", metavar="FILE", default=None, help="write to FILE instead of stdout")
    p.set_defaults(func=_cmd_schema)

    p = sub.add_parser("cache", help="list, prune, clear or locate the artifact store")
    p.add_argument("action", choices=["list", "prune", "clear", "path"])
    p.add_argument(
        "--unused-for",
        metavar="DURATION",
        type=duration,
        default=None,
        help="prune: remove artifacts no run has built or loaded for this long (30m, 12h, 7d), "
        "except the data, models and variants that what stays was built from",
    )
    p.add_argument("--dry-run", action="store_true", help="prune: list what would be removed, remove nothing")
    p.add_argument(
        "--store",
        metavar="DIR|URL",
        default=None,
        help=f"store directory or URL (s3://bucket/prefix; default: ${STORE_ENV}, else ini robustspec_store, "
        f"else {DEFAULT_STORE} under pytest's rootdir)",
    )
    p.add_argument(
        "--cache",
        metavar="DIR",
        default=None,
        help="the local cache of a store at a URL (default: $ROBUSTSPEC_STORE_CACHE, else ini "
        "robustspec_store_cache, else .robustspec/cache/<digest of the URL> under pytest's rootdir)",
    )
    p.add_argument(
        "--remote",
        action="store_true",
        help="clear: also delete everything in the store at the URL (every machine's artifacts)",
    )
    p.set_defaults(func=_cmd_cache)

    p = sub.add_parser("compare", help="compare two results files: a markdown table, exit 1 on a regression")
    p.add_argument(
        "old", metavar="OLD", help="the baseline: a results file, or with --history a kept run (-1, 3, a commit)"
    )
    p.add_argument("new", metavar="NEW", help="this run: a results file, or with --history a kept run")
    p.add_argument(
        "--history",
        metavar="DIR",
        default=None,
        help="runs kept by --robustspec-history DIR: OLD and NEW may name them (latest, -2, 0003, a commit prefix)",
    )
    p.add_argument(
        "--tolerance",
        type=float,
        default=0.02,
        help="default allowed move the wrong way, for items without regression: {max-drop} "
        "(absolute within [-1, 1], relative beyond; default %(default)s)",
    )
    p.add_argument("-o", "--output", metavar="FILE", default=None, help="write the markdown to FILE instead of stdout")
    p.set_defaults(func=_cmd_compare)

    p = sub.add_parser(
        "merge",
        help="join the results files of pytest --robustspec-shard I/N's shards into one",
        description="Union the items of results files by id (the same record twice counts once; one id "
        "with two different records is an error), recompute the summary and environment, and write OUT "
        "for robustspec compare and robustspec report.",
    )
    p.add_argument("output", metavar="OUT", help="the merged results file to write")
    p.add_argument("files", nargs="+", metavar="RESULTS", help="the shards' results files")
    p.set_defaults(func=_cmd_merge)

    p = sub.add_parser("report", help="an HTML report (self-contained) and a markdown one from a results file")
    p.add_argument("results", metavar="RESULTS", help="a results file (.robustspec/results.json)")
    p.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        default="report.html",
        help="the HTML file (default %(default)s); the markdown goes next to it, same name, .md",
    )
    p.add_argument("--title", default="robustspec report", help="the page title")
    p.add_argument(
        "--history",
        metavar="DIR",
        default=None,
        help="also draw each item's value over the runs kept in DIR (pytest --robustspec-history DIR)",
    )
    p.add_argument(
        "--frontier",
        metavar="FILE",
        action="append",
        default=[],
        help="also plot the frontier that robustspec search --json wrote to FILE (repeatable)",
    )
    p.set_defaults(func=_cmd_report)

    p = sub.add_parser(
        "research",
        help="the research's Table 1 and Table 2 and which of its trends hold",
        description="Run suites/table1.yaml and suites/table2.yaml (from the current directory) with "
        "pytest, or read a results file, and print the research's two tables and a "
        "check of each of its trends, computed from the numbers.",
    )
    p.add_argument(
        "--results", metavar="FILE", default=None, help="read this results file instead of running the suites"
    )
    p.add_argument("--deep", action="store_true", help="also run suites/extra/table1-deep.yaml (ResNet-101/152)")
    p.add_argument(
        "--full",
        action="store_true",
        help="run suites/extra/table2.yaml (the research's budgets) instead of suites/table2.yaml",
    )
    p.add_argument("-n", dest="workers", metavar="N", default=None, help="pytest-xdist workers (passed to pytest)")
    p.add_argument(
        "--store",
        metavar="DIR",
        default=None,
        help=f"artifact store directory (default: ${STORE_ENV}, else ini robustspec_store, else {DEFAULT_STORE} "
        "under pytest's rootdir)",
    )
    p.add_argument(
        "--save-results",
        metavar="FILE",
        default=None,
        help="keep the run's results file here (default: a temporary file, removed)",
    )
    p.add_argument("-o", "--output", metavar="FILE", default=None, help="also write the tables and trends as markdown")
    p.set_defaults(func=_cmd_research)
    p = sub.add_parser(
        "search",
        help="the smallest variant along a budget axis that passes the suite's gates, on validation images",
    )
    p.add_argument("suite", metavar="SUITE", help="a suite file")
    p.add_argument("--model", required=True, help="the suite's model")
    p.add_argument("--variant", required=True, help="its variant whose prune or search budget is the axis")
    p.add_argument(
        "--points",
        metavar="LIST",
        default=None,
        help="budgets to measure, comma-separated (8M,6M,4.51M; ratios 0.3,0.5); default: --count points around "
        "the variant's own budget, one above it and the rest below, each 0.75 of the one before",
    )
    p.add_argument("--count", type=int, default=6, metavar="N", help="points by default (6)")
    p.add_argument("--json", metavar="FILE", default=None, help="also write every point, gate and the frontier as JSON")
    p.add_argument("--store", metavar="DIR|URL", default=None, help="the store, as for cache (default: as pytest's)")
    p.add_argument("--cache", metavar="DIR", default=None, help="the local cache of a store at a URL")
    p.add_argument("--device", default="auto", help="where to build and evaluate (auto, cpu, cuda)")
    p.add_argument(
        "--build-threads",
        type=int,
        default=1,
        metavar="N",
        help="torch threads of each build (1, as pytest's default: other counts are other artifacts)",
    )
    p.add_argument("-v", "--verbose", action="store_true", help="progress lines on stderr")
    p.set_defaults(func=_cmd_search)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit status (0 ok, 1 invalid suites, 2 usage error)."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: --help, --version, or a usage error it already printed
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    from .errors import RobustSpecError

    try:
        return args.func(args)
    except UsageError as exc:
        print(f"robustspec {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except RobustSpecError as exc:
        print(f"robustspec {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
