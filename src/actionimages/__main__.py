"""``python -m actionimages`` is the ``actionimages`` console script."""

import sys

from actionimages.cli import main

sys.exit(main())
