"""``python -m emberscope ...`` is ``emberscope-run ...``."""

import sys

from emberscope.commands.run import main

if __name__ == "__main__":
    sys.exit(main())
