"""The documentation site: ``mkdocs build --strict`` over docs/ (mkdocs.yml), into a temporary folder.

Strict fails on any warning; mkdocs.yml makes a page left out of the nav, a link to a missing page and an
anchor that no heading of the linked page makes warnings too, so a broken link between pages fails here.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _nav_pages(node: object) -> list[str]:
    if isinstance(node, str):
        return [node] if node.endswith(".md") else []
    if isinstance(node, dict):
        return [p for v in node.values() for p in _nav_pages(v)]
    if isinstance(node, list):
        return [p for v in node for p in _nav_pages(v)]
    return []


def test_every_docs_page_is_in_the_nav() -> None:
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))
    nav = _nav_pages(config["nav"])
    assert len(nav) == len(set(nav))
    pages = sorted(p.relative_to(ROOT / "docs").as_posix() for p in (ROOT / "docs").rglob("*.md"))
    assert sorted(nav) == pages


def test_mkdocs_builds_the_site_strictly(tmp_path: Path) -> None:
    site = tmp_path / "site"
    cmd = [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(ROOT / "mkdocs.yml")]
    proc = subprocess.run([*cmd, "--site-dir", str(site)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (site / "index.html").is_file()
    for page in ("suites", "ci-gate", "extending"):
        assert (site / page / "index.html").is_file(), page
    assert (site / "github-actions.yml").is_file()  # linked from ci-gate.md, served as it is
