import os
import sys

# The reference implementations live next to the tests.
sys.path.insert(0, os.path.dirname(__file__))
