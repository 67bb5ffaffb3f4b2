"""``python -m genlib.course``: the ``course`` command (see :mod:`genlib.course.cli`)."""

import sys

from genlib.course.cli import main

if __name__ == "__main__":
    sys.exit(main())
