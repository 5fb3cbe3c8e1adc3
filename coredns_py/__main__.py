"""``python -m coredns_py`` is the same as the ``coredns-py`` console script."""

import sys

from coredns_py.cli import main

sys.exit(main())
