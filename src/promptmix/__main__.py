"""``python -m promptmix ...``: the same as the ``promptmix`` command."""

import sys

from promptmix.cli import main

sys.exit(main())
