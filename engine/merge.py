"""``python -m engine.merge``: :mod:`engine.io.merge`."""

import sys

from engine.io.merge import main

if __name__ == "__main__":
    sys.exit(main())
