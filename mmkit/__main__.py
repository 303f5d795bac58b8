import sys

from mmkit.cli import main

sys.exit(main())
