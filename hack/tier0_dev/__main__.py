"""`python -m tier0_dev`."""

import sys

from tier0_dev.cli import main

sys.exit(main())
