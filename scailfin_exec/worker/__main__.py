# Entry point of the worker shim: python3 -m scailfin_exec.worker job.json (or the zipapp).
import sys

from .shim import main

sys.exit(main())
