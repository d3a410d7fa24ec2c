"""Test setup: the NumPy references next to the tests, and Hypothesis profiles.

``HYPOTHESIS_PROFILE=ci`` runs the property suite at full strength (>= 10,000 examples in all);
the default profile is small for quick local runs.
"""

import os
import sys

from hypothesis import HealthCheck, settings

# The reference implementations live next to the tests.
sys.path.insert(0, os.path.dirname(__file__))

settings.register_profile("default", max_examples=40, deadline=None)
settings.register_profile(
    "ci", max_examples=700, deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))
