"""`python -m sheepcrm_mcp`: the same as the `sheepcrm-mcp` command."""

import sys

from sheepcrm_mcp.cli import main

sys.exit(main())
