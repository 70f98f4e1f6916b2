"""``python -m embedded_registry``."""

import sys

from embedded_registry.cli import main

sys.exit(main())
