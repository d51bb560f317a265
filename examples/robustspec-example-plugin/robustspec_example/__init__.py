"""An example robustspec plugin: the ``gaussian-noise`` attack and the ``min-clean-accuracy-margin`` expectation.

Nothing here is imported by robustspec until a suite (or ``robustspec schema``) looks up an attack or an
expectation: then the registries load their entry points (pyproject.toml), which import the modules below.
"""
