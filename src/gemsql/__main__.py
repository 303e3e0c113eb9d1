import sys

from gemsql.cli import main

sys.exit(main())
