"""``python -m dag_factory``: the command line."""

import sys

from dag_factory.cli import main

sys.exit(main())
