"""`python -m loader`: the command line."""

import sys

from loader.cli import main

sys.exit(main())
