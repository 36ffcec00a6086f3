"""``python -m lazykit`` is the ``lazykit`` command."""

import sys

from lazykit.cli import main

sys.exit(main())
