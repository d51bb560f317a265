"""The pytest plugin: thin hook modules over the library (the library itself never imports pytest).

Registered through one ``pytest11`` entry point, :mod:`robustspec.pytest.plugin`, which loads:

- :mod:`~robustspec.pytest.options`: the ``robustspec`` option group, ini keys, the session state;
- :mod:`~robustspec.pytest.collection`: suite files → model → variant → check items;
- :mod:`~robustspec.pytest.item`: a check item: judge, record properties, hand over to the gate;
- :mod:`~robustspec.pytest.shard`: ``--robustspec-shard I/N``: keep one shard's items, deselect the rest;
- :mod:`~robustspec.pytest.gate`: baseline comparison and the verdict (:mod:`robustspec.verdict`),
  the results file, the baseline summary;
- :mod:`~robustspec.pytest.progress`: progress lines on the terminal, tailed from xdist workers;
- :mod:`~robustspec.pytest.summary`: the robustspec tables at the end of the session;
- :mod:`~robustspec.pytest.junit`: JUnit XML classnames ``<suite file>.<model>.<variant>``.

:mod:`~robustspec.pytest.state` holds the per-session state the modules share (in ``config.stash``).
``-p no:robustspec`` disables all of them.
"""
