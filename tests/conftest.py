"""Shared test fixtures, and the hypothesis profiles of the library's tests.

`HYPOTHESIS_PROFILE=ci` (set by .ci/run) makes property tests derandomised, so CI is repeatable. The
profiles live here, not in a root conftest: `pytest suites/` must not import hypothesis (2 s a worker).
"""

import os

import pytest
from hypothesis import HealthCheck, settings

pytest_plugins = ["pytester", "tests.s3server"]  # s3_server, s3_env: a real S3 server (SeaweedFS)

settings.register_profile("ci", derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread_per_xdist_worker():
    """Under xdist every core already runs a worker: torch's default of one intra-op thread per core
    makes the workers' threads contend (1.9-3.4x slower on 2 busy cores, docs/speed.md "Threads"), so a
    worker keeps one. Without xdist, torch's default stays."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        import torch

        torch.set_num_threads(1)
    yield


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models on a shared 2-core machine: intra-op threads only contend (10-100x slower)."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(autouse=True, scope="session")
def _tree_cache_in_tmp(tmp_path_factory: pytest.TempPathFactory):
    """The image-tree check's cache (robustspec.data.tree) goes to the session's temporary folder, not to
    ~/.cache/robustspec: every test tree would leave a file there."""
    old = os.environ.get("ROBUSTSPEC_CACHE_DIR")
    os.environ["ROBUSTSPEC_CACHE_DIR"] = str(tmp_path_factory.mktemp("robustspec-cache"))
    yield
    if old is None:
        os.environ.pop("ROBUSTSPEC_CACHE_DIR", None)
    else:
        os.environ["ROBUSTSPEC_CACHE_DIR"] = old


#: Variables of an outer run that must not leak into a pytester run: its store, its shard, its executor, its
#: xdist worker identity.
_INHERITED = (
    "ROBUSTSPEC_STORE",
    "ROBUSTSPEC_SHARD",
    "ROBUSTSPEC_EXECUTOR",
    "PYTEST_XDIST_WORKER",
    "PYTEST_XDIST_WORKER_COUNT",
    "PYTEST_XDIST_TESTRUNUID",
)


@pytest.fixture
def isolated_pytester(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """``pytester`` whose runs inherit no outer store and no xdist worker identity."""
    for var in _INHERITED:
        monkeypatch.delenv(var, raising=False)
    return pytester


@pytest.fixture
def write_project(isolated_pytester: pytest.Pytester):
    """Write ``{relative path: text}`` into the isolated pytester project (folders made) and return it."""

    def write(files: dict[str, str]) -> pytest.Pytester:
        for rel, text in files.items():
            p = isolated_pytester.path / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(text, encoding="utf-8")
        return isolated_pytester

    return write


@pytest.fixture
def render_report():
    """``docs/render_report.py`` as a module (it draws a report in headless Chromium); skipped where there
    is no Chromium."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location(
        "render_report", Path(__file__).parents[1] / "docs" / "render_report.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if module.find_chromium() is None:
        pytest.skip("no Chromium (chromium, chromium-browser or google-chrome; apt-get install -y chromium)")
    return module
