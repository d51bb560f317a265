"""The ray executor (issue #15): builds as Ray tasks on a cluster, items judged on the host (docs/ray.md).

A local Ray cluster (``ray start --head``, 2 CPUs) is started by the slow test and stopped at its end. One
tiny suite (3 classes of 16x16 images, 1 epoch, resnet10-mini, a pruned variant) runs locally into one
store and through the cluster into another: every recorded number and key must be the same, and every
build in the second store must have been done by a Ray worker, not by the pytest process; then again
through a Ray Client address onto an S3 store (SeaweedFS, tests/s3server.py), as a CI host outside the
cluster would run it. Bad executor
values are a quick table: each is a usage error that says what is expected.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from robustspec.store import Store

RUN_TIMEOUT = 300

PROJECT = {
    "specs/datasets.yaml": (
        "tiny: {name: office-synth, classes: 3, image-size: 16, train-per-class: 12, test-per-class: 8, seed: 0}\n"
    ),
    "specs/training.yaml": "tiny: {epochs: 1, batch-size: 16, resources: {cpus: 1}}\n",
    "suites/s.yaml": """\
data: tiny
source: amazon
targets: [webcam]
train: tiny
models:
  - name: resnet10-mini
    variants:
      fp: {prune: {ratio: 0.4}}
  - {name: own, arch: "ownnet:tiny"}
expect:
  - source-accuracy: {min: 0.0}
  - target-accuracy: {min: 0.0}
  - drop-vs-baseline: {variants: [fp], domains: [webcam], max: 1.0}
""",
    # A network that builds only in the pytest process, as one that needs the CI host's GPU would.
    "ownnet.py": """\
import os
from pathlib import Path

from torch import nn

from robustspec.errors import ModelError


def tiny(num_classes):
    if os.getpid() != int((Path(__file__).parent / "pytest.pid").read_text()):
        raise ModelError("ownnet:tiny builds only where pytest runs")
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 16 * 16, num_classes))
""",
    # The pytest process's pid: no build of a ray run may be its.
    "conftest.py": """\
import os

import robustspec.executors.ray

robustspec.executors.ray.EVERY_S = 0.5  # a waiting item says so every half second, not every 10 s


def pytest_sessionstart(session):
    with open(os.path.join(str(session.config.rootpath), "pytest.pid"), "w") as f:
        f.write(str(os.getpid()))
""",
}
#: source-accuracy and target-accuracy[webcam] on three subjects (resnet10-mini's two, own), one drop-vs-baseline.
N_ITEMS = 3 * 2 + 1
#: own's two items, which fail on a cluster: its network does not build there.
N_OWN = 2


# -- bad values: usage errors --------------------------------------------------------------------------

BAD = [
    pytest.param(["--robustspec-executor=bogus"], {}, "unknown executor 'bogus'", id="unknown-name"),
    pytest.param(["--robustspec-executor=rey"], {}, "did you mean 'ray'?", id="close-to-ray"),
    pytest.param(["--robustspec-executor=local://x:1"], {}, "takes no address", id="local-with-address"),
    pytest.param(["--robustspec-executor=ray://head"], {}, "ray://HOST:PORT", id="ray-address-without-port"),
    pytest.param(["--robustspec-executor=ray://"], {}, "ray://HOST:PORT", id="ray-empty-address"),
    pytest.param(["--robustspec-executor=://h:1"], {}, "expected an executor name", id="no-name"),
    pytest.param([], {"ROBUSTSPEC_EXECUTOR": "dask"}, "ROBUSTSPEC_EXECUTOR: unknown executor", id="env"),
    pytest.param([], {"ini": "ray:/h:1"}, "ini robustspec_executor: unknown executor", id="ini"),
]


@pytest.mark.parametrize(("args", "where", "message"), BAD)
def test_a_bad_executor_is_a_usage_error(
    isolated_pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, args: list[str], where: dict, message: str
) -> None:
    if "ROBUSTSPEC_EXECUTOR" in where:
        monkeypatch.setenv("ROBUSTSPEC_EXECUTOR", where["ROBUSTSPEC_EXECUTOR"])
    if "ini" in where:
        isolated_pytester.makeini(f"[pytest]\nrobustspec_executor = {where['ini']}\n")
    result = isolated_pytester.runpytest_inprocess("-p", "no:cacheprovider", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    err = result.stderr.str()
    assert message in err and "Traceback" not in err, err


def test_ray_not_installed_names_the_extra(isolated_pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray fails; find_spec says so
    result = isolated_pytester.runpytest_inprocess("-p", "no:cacheprovider", "--robustspec-executor=ray")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "pip install 'robustspec[ray]'" in result.stderr.str()


def test_resources_are_no_part_of_any_key() -> None:
    from robustspec.spec.schema import TrainRecipe

    plain, asked = (
        TrainRecipe(epochs=1),
        TrainRecipe.model_validate({"epochs": 1, "resources": {"cpus": 2, "gpus": 0.5}}),
    )
    assert "resources" not in plain.model_dump(mode="json")  # recipes without it dump as before
    assert asked.model_dump(mode="json", exclude={"resources"}) == plain.model_dump(mode="json")


def test_resources_are_validated_where_written(tmp_path: Path) -> None:
    from robustspec.errors import SpecErrors
    from robustspec.spec.loader import load_suite

    suite = tmp_path / "s.yaml"
    suite.write_text(
        "source: amazon\ntrain: {epochs: 1, resources: {cpus: 0, gpu: 1}}\nmodels: [resnet10-mini]\n"
        "expect:\n  - source-accuracy: {min: 0.0}\n"
    )
    with pytest.raises(SpecErrors) as caught:
        load_suite(suite)
    text = str(caught.value)
    assert f"{suite}:2:" in text and "train.resources.cpus" in text and "train.resources.gpu" in text, text


def test_a_worker_with_other_libraries_builds_nothing(tmp_path: Path) -> None:
    """The task itself, called here: a worker whose key is not the judging process's says why, and builds nothing."""
    from robustspec.executors.base import BuildSpec
    from robustspec.executors.ray import build_subject
    from robustspec.plan import plan_suite
    from robustspec.spec.loader import load_suite
    from robustspec.workspace import Workspace

    suite = tmp_path / "s.yaml"
    suite.write_text("source: amazon\nmodels: [resnet10-mini]\nexpect:\n  - source-accuracy: {min: 0.0}\n")
    check = plan_suite(load_suite(suite))[0]
    store = Store(tmp_path / "store")
    recipe = Workspace(store, "cpu").model_recipe(check.loaded.suite, check.model)
    there = {**recipe, "libraries": {**recipe["libraries"], "torch": "0.0"}}
    result = build_subject(BuildSpec(store, "cpu", 1), [check], None, {"key": "variant-" + "0" * 24, "recipe": there})
    here = recipe["libraries"]["torch"]
    assert (
        result["errors"] == {0: result["errors"][0]}
        and f"libraries (torch {here} here, 0.0 there)" in result["errors"][0]
    )
    older = build_subject(BuildSpec(store, "cpu", 1), [check], None, {"key": "", "recipe": recipe, "version": "0.0.1"})
    assert "the judging process 0.0.1: install the same" in older["errors"][0]
    assert store.entries() == [] and store.builds() == []


# -- a cluster ----------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass(frozen=True)
class Cluster:
    gcs: str  # HOST:PORT, for RAY_ADDRESS
    client: str  # HOST:PORT of its Ray Client server
    log: Path  # what its ray start writes

    def wait(self, timeout: float = 120.0) -> None:
        """Until the head says it runs (it starts while the local run goes)."""
        deadline = time.monotonic() + timeout
        while "Ray runtime started" not in self.log.read_text(errors="replace"):
            assert time.monotonic() < deadline, self.log.read_text(errors="replace")
            time.sleep(0.2)


@pytest.fixture
def ray_cluster() -> Iterator[Cluster]:
    """A local head node with 2 CPUs. Stopped by ending its ``ray start --block``, which drains and stops
    every process it started (only this cluster's)."""
    from robustspec.executors.ray import ray_installed

    if not ray_installed():  # not imported here: pytester's teardown would drop it from sys.modules
        pytest.skip("ray is not installed (pip install 'robustspec[ray]')")
    port, client_port = _free_port(), _free_port()
    ray = Path(sys.executable).with_name("ray")
    temp = tempfile.mkdtemp(prefix="rs-ray-")  # short: Ray's socket paths must fit AF_UNIX's 107 bytes
    log_path = Path(temp) / "start.log"
    log = open(log_path, "w")  # noqa: SIM115 - open while the cluster runs
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "RAY_USAGE_STATS_ENABLED": "0"}
    head = subprocess.Popen(
        [str(ray), "start", "--head", f"--port={port}", f"--ray-client-server-port={client_port}", "--num-cpus=2",
         "--num-gpus=0", "--include-dashboard=false", "--disable-usage-stats", f"--temp-dir={temp}", "--block"],
        stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
    )  # fmt: skip
    try:
        yield Cluster(f"127.0.0.1:{port}", f"127.0.0.1:{client_port}", log_path)
    finally:
        head.terminate()
        try:
            head.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, 9)
            head.wait(10)
        log.close()
        shutil.rmtree(temp, ignore_errors=True)


def run(pytester: pytest.Pytester, store: Path, *args: str, failed: int = 0) -> str:
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-p", "no:xdist", f"--robustspec-store={store}", "--junitxml=out.xml", *args,
        timeout=RUN_TIMEOUT,
    )  # fmt: skip
    text = result.stdout.str() + "\n" + result.stderr.str()
    assert result.ret == (1 if failed else 0), text
    result.assert_outcomes(passed=N_ITEMS - failed, failed=failed)
    return text


def remote_failures(text: str) -> None:
    """own's items fail with the worker's error, in words, not a traceback of Ray's."""
    for name in ("source-accuracy", "target-accuracy[webcam]"):
        assert f"could not run {name}: ownnet:tiny builds only where pytest runs (on Ray node " in text, text
    assert "Traceback" not in text and "RayTaskError" not in text, text


def remote_build_pids(url: str) -> set[int]:
    """The pids of the builds a store at a URL records, read in a subprocess (pytester's teardown would drop
    s3fs from this process's modules)."""
    code = (
        "import json, sys; from robustspec.config import open_store; "
        "print(json.dumps(sorted({int(str(b['pid']).rsplit(':', 1)[-1]) for b in open_store(sys.argv[1]).builds()})))"
    )
    out = subprocess.run([sys.executable, "-c", code, url], capture_output=True, text=True, check=True, timeout=120)
    pids = set(json.loads(out.stdout))
    assert pids, out
    return pids


def numbers(props: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
    return {k: v for k, v in props.items() if k.startswith("resnet10-mini::")}


def properties(pytester: pytest.Pytester) -> dict[str, dict[str, str]]:
    out = {}
    for tc in ET.parse(pytester.path / "out.xml").getroot().iter("testcase"):
        props = {p.get("name"): p.get("value") for p in tc.iter("property")}
        if "model" not in props:  # an item that could not run records nothing
            continue
        out[f"{props['model']}::{props['variant']}::{tc.get('name')}"] = props
    return out


@pytest.mark.slow
def test_ray_builds_on_the_cluster_with_the_local_numbers(
    write_project, s3_env, ray_cluster: Cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    pytester = write_project(PROJECT)
    started = time.monotonic()
    run(pytester, tmp_path / "local")
    local = properties(pytester)
    assert len(local) == N_ITEMS and len(numbers(local)) == N_ITEMS - N_OWN
    local_pid = int((pytester.path / "pytest.pid").read_text())
    assert {b["pid"] for b in Store(tmp_path / "local").builds()} == {local_pid}
    local_s = time.monotonic() - started

    ray_cluster.wait()
    monkeypatch.setenv("RAY_ADDRESS", ray_cluster.gcs)
    started = time.monotonic()
    text = run(pytester, tmp_path / "ray", "--robustspec-executor=ray", failed=N_OWN)
    ray_s = time.monotonic() - started
    assert numbers(properties(pytester)) == numbers(local)  # every number, outcome, key and recipe
    remote_failures(text)
    host_pid = int((pytester.path / "pytest.pid").read_text())
    builds = Store(tmp_path / "ray").builds()
    kinds = sorted({b["kind"] for b in builds})
    assert kinds == sorted({b["kind"] for b in Store(tmp_path / "local").builds()})
    assert host_pid not in {b["pid"] for b in builds}, builds  # all built by Ray workers
    assert len([b for b in builds if b["kind"] == "model"]) == 1  # trained once (own's failed)
    assert "ray: building 3 model/variants on the cluster" in text, text
    assert ": built resnet10-mini/fp in " in text and ": failed model own in " in text, text
    assert "ray: resnet10-mini/baseline building on the cluster (" in text, text
    environment = json.loads((pytester.path / ".robustspec/results.json").read_text())["environment"]
    assert environment["executor"] == "ray", environment

    # robustspec.run takes the executor too; on a store that holds everything it judges, it connects to
    # nothing: Ray is not even imported. In this process: the suite without own, whose factory imports torch
    # (pytester's teardown drops what a test imported from sys.modules, and torch cannot be imported twice).
    import yaml

    import robustspec

    suite = yaml.safe_load(PROJECT["suites/s.yaml"])
    suite["suite"], suite["models"] = "s", suite["models"][:1]
    before = {m for m in ("ray", "torch") if m in sys.modules}
    warm = robustspec.run(suite, store=tmp_path / "ray", base_dir=pytester.path, executor="ray")
    assert warm.passed and len(warm) == N_ITEMS - N_OWN
    assert {m for m in ("ray", "torch") if m in sys.modules} == before
    by_id = {f"{c.model}::{c.variant}::{c.id.rsplit('::', 1)[1]}": c.properties for c in warm}
    assert {k: {p: str(v) for p, v in by_id[k].items() if p in local[k]} for k in by_id} == numbers(local)

    # The same as a CI host outside the cluster works: through a Ray Client address, onto an S3 store the
    # workers share (a real SeaweedFS on loopback: s3_env, whose endpoint and keys were in the environment
    # before the cluster started, as a cluster's own configuration gives them).
    monkeypatch.delenv("RAY_ADDRESS")
    url = s3_env.url("ray-client")
    started = time.monotonic()
    text = run(pytester, url, f"--robustspec-executor=ray://{ray_cluster.client}", failed=N_OWN)  # type: ignore[arg-type]
    client_s = time.monotonic() - started
    assert numbers(properties(pytester)) == numbers(local)
    remote_failures(text)
    assert f"ray: connected to ray://{ray_cluster.client}" in text, text
    assert host_pid not in remote_build_pids(url), text
    print(json.dumps({"local_s": round(local_s, 1), "ray_s": round(ray_s, 1), "client_s": round(client_s, 1)}))
