import sys

from gridgate.cli import main

sys.exit(main())
