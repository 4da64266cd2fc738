"""``python -m edge`` is the same as the ``edgecam`` console script."""

import sys

from .cli import main

sys.exit(main())
