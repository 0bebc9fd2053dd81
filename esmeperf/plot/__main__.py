"""`python -m esmeperf.plot`: esmeperf-plot."""

import sys

from .command import main

sys.exit(main())
