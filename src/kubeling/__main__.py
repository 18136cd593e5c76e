"""`python -m kubeling`."""

import sys

from kubeling.cli.main import main

sys.exit(main())
