# HTCondor pilots on a Slurm allocation (the VC3 way): the pilot batch script and its HTCondor
# configuration (script.py), and `scailfin-exec pilots`, which fetches a token and submits them (command.py).
