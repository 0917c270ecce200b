import sys

from gapwatch.devstack.chaos.cli import main

sys.exit(main())
