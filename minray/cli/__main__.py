"""`python -m minray.cli`: the `minray` command."""

import sys

from minray.cli import main

sys.exit(main())
