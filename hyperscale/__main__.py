"""Run the ``hyperscale`` command as ``python -m hyperscale``."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
