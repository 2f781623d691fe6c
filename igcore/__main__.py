import sys

from igcore.cli import main

sys.exit(main())
