"""``python -m engine.compare``: :mod:`engine.io.compare`."""

import sys

from engine.io.compare import main

if __name__ == "__main__":
    sys.exit(main())
