"""``python -m apicenterd.cli``: the ``apicenterd`` command."""

import sys

from . import main

sys.exit(main())
