"""The CI gate: a results file per session, baselines and regressions, ``compare`` and ``report``.

- :mod:`.results`  the results document (one per session, merged from every xdist worker), read and write;
- :mod:`.compare`  metric against baseline: the one rule the gate and ``robustspec compare`` share;
- :mod:`.html`     ``robustspec report``: HTML (self-contained) and markdown: tables, and plots with intervals
                   (tables only when matplotlib, the extra ``robustspec[report]``, is missing).

The pytest hooks that use them are :mod:`robustspec.pytest.gate`; the verdict is :mod:`robustspec.verdict`.

Nothing here imports torch.
"""
