import sys

from bessai_edge.cli import main

sys.exit(main())
