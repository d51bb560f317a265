"""Project-wide pytest configuration: hypothesis profiles for the library's tests.

`HYPOTHESIS_PROFILE=ci` (set by .ci/run) makes property tests derandomised, so CI is repeatable.
"""

import os

try:
    from hypothesis import HealthCheck, settings
except ImportError:  # the suites do not need hypothesis
    pass
else:
    settings.register_profile("ci", derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    settings.register_profile("dev", deadline=None)
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))
