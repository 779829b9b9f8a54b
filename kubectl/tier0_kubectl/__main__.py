"""`python -m tier0_kubectl` runs the plugin like the `kubectl-tier0` executable."""

import sys

from tier0_kubectl import cli

sys.exit(cli.main())
