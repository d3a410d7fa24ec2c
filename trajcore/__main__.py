"""``python -m trajcore``: the ``trajcore`` command."""

import sys

from .cli import main

sys.exit(main())
