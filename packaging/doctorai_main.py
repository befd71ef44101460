"""PyInstaller entry script: the frozen bundle's ``doctorai`` executable runs the same launcher."""

import sys

from desktop.launcher import main

if __name__ == "__main__":
    sys.exit(main())
