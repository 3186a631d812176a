"""``python -m betenet.cli``: the same as the ``betenet`` console script."""

import sys

from betenet.cli import main

sys.exit(main())
