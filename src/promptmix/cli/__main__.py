"""``python -m promptmix.cli`` (what ``accelerate launch -m`` and ``torchrun -m`` need)."""

import sys

from promptmix.cli import main

sys.exit(main())
