"""Test setup: the NumPy references next to the tests, and Hypothesis profiles.

The ``ci`` profile runs the property suite at full strength (>= 10,000 examples in all); it is the
default when the ``CI`` environment variable is set (as CI sets it) and can be chosen anywhere with
``HYPOTHESIS_PROFILE=ci``. Otherwise the small ``default`` profile keeps local runs quick.
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
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "default"))
