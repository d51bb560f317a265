"""The ``pytest11`` entry point: loads the robustspec hook modules (``-p no:robustspec`` disables them all).

In dependency order: pytest marks each module for assertion rewriting just before importing it, and
warns about one that an earlier module already imported.
"""

pytest_plugins = [
    "robustspec.pytest.options",
    "robustspec.pytest.progress",
    "robustspec.pytest.executor",
    "robustspec.pytest.gate",
    "robustspec.pytest.item",
    "robustspec.pytest.collection",
    "robustspec.pytest.shard",
    "robustspec.pytest.summary",
    "robustspec.pytest.junit",
]
