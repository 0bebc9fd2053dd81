import sys

from esmeperf.target.cli import main

sys.exit(main())
