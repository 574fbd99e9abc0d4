# The chirp transfer mode, submit half: nothing travels but the job itself, which reaches the
# submit side through HTCondor's I/O proxy (the shim writes outputs back, each renamed into place);
# once the job has ended, the temporaries of a killed or evicted attempt are cleared. Only the I/O
# proxy sets it apart from shared mode's half.

from __future__ import annotations

from .shared import bring_back, inputs, ship  # noqa: F401  (the same, through the I/O proxy)

IO_PROXY = True
