import sys

from packwatch.cli import main

sys.exit(main())
