# scailfin-exec: run containerised CWL and yadage workflow steps through HTCondor or locally,
# in whichever container runtime the worker node offers.
__version__ = "0.1.0"
