"""`python -m esmeperf.compare`: esmeperf-compare."""

import sys

from .command import main

sys.exit(main())
