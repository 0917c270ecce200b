import sys

from gapwatch.cli import main

sys.exit(main())
