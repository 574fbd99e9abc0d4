# The worker shim: the one piece that crosses the wire to worker nodes. Standard library only,
# Python >= 3.6; it must never import the rest of scailfin_exec.
