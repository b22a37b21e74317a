"""``python -m engine.report``: :mod:`engine.io.report`."""

import sys

from engine.io.report import main

if __name__ == "__main__":
    sys.exit(main())
