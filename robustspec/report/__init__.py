"""The CI gate: a results file per session, baselines and regressions, ``compare`` and ``report``.

- :mod:`.results`  the results document (one per session, merged from every xdist worker), read and write;
- :mod:`.compare`  metric against baseline: the one rule the gate and ``robustspec compare`` share;
- :mod:`.gate`     what a check item does after it is judged (baseline comparison, severity);
- :mod:`.html`     ``robustspec report``: HTML (self-contained) and markdown with Table 1 and plots;
- :mod:`.plugin`   the pytest hooks (a second ``pytest11`` entry point).

Nothing here imports torch.
"""
