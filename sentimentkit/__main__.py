import sys

from sentimentkit.cli import main

sys.exit(main())
