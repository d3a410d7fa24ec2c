"""Hypothesis profiles: ``HYPOTHESIS_PROFILE=ci`` runs the property suite at full strength."""

import os

from hypothesis import HealthCheck, settings

# default: a quick local run; ci: >= 10,000 examples across tests/test_properties.py.
settings.register_profile("default", max_examples=40, deadline=None)
settings.register_profile(
    "ci",
    max_examples=600,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    print_blob=True,
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))
