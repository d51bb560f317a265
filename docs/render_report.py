"""Render a robustspec HTML report to a PNG in headless Chromium, to look at it as a person would.

    python docs/render_report.py report.html -o report.png [--width 1280] [--height 3200]

Needs a Chromium binary (``/usr/bin/chromium``; on Debian/Ubuntu ``apt-get install -y chromium``), or
``--chromium PATH`` / ``$CHROMIUM``. Exits 2 when there is none. The page is self-contained (images are
embedded), so nothing is fetched.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_chromium(explicit: str | None = None) -> str | None:
    for name in (explicit, os.environ.get("CHROMIUM"), "/usr/bin/chromium", *CANDIDATES):
        if name and (Path(name).is_file() or shutil.which(name)):
            return shutil.which(name) or name
    return None


def render(
    html: Path, png: Path, width: int = 1280, height: int = 3200, chromium: str | None = None, timeout: float = 120.0
) -> Path:
    binary = find_chromium(chromium)
    if binary is None:
        raise FileNotFoundError("no Chromium found (apt-get install -y chromium, or --chromium PATH)")
    png = png.resolve()
    png.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="robustspec-chromium-") as profile:
        cmd = [
            binary,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--no-first-run",
            "--disable-extensions",
            f"--user-data-dir={profile}",
            f"--window-size={width},{height}",
            f"--screenshot={png}",
            html.resolve().as_uri(),
        ]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0 or not png.is_file():
        raise RuntimeError(f"chromium failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    return png


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("html", type=Path)
    parser.add_argument("-o", "--output", type=Path, default=None, help="PNG file (default: next to the HTML)")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=3200)
    parser.add_argument("--chromium", default=None, help="the Chromium binary")
    args = parser.parse_args(argv)
    if not args.html.is_file():
        print(f"render_report: no such file: {args.html}", file=sys.stderr)
        return 2
    try:
        out = render(args.html, args.output or args.html.with_suffix(".png"), args.width, args.height, args.chromium)
    except FileNotFoundError as exc:
        print(f"render_report: {exc}", file=sys.stderr)
        return 2
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        print(f"render_report: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
