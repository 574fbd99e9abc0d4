# Reaching the pool: its collector (the settings' pool, or the HTCondor configuration's), and the
# schedd to submit to (named, or the pool's first), checked with a query that matches nothing,
# so that an unreachable pool fails before anything is submitted, with where it looked.

from __future__ import annotations

from .. import SchedulerError


def connect(htcondor2, pool: str | None, name: str | None):
    """(the schedd, its name), or SchedulerError saying which collector or schedd did not answer."""
    where = pool or htcondor2.param.get("COLLECTOR_HOST", "the configured collector")
    try:
        collector = htcondor2.Collector(pool) if pool else htcondor2.Collector()
        if name is None:
            ads = collector.query(htcondor2.AdType.Schedd, projection=["Name"])
            if not ads:
                raise SchedulerError(f"the pool at {where} advertises no schedd")
            name = ads[0]["Name"]
        ad = collector.locate(htcondor2.DaemonType.Schedd, name)
    except SchedulerError:
        raise
    except Exception as e:  # noqa: BLE001  (the bindings raise several kinds)
        raise SchedulerError(f"cannot reach the HTCondor collector at {where}: {e}") from None
    try:
        schedd = htcondor2.Schedd(ad)
        schedd.query(constraint="false", projection=["ClusterId"])
    except Exception as e:  # noqa: BLE001
        raise SchedulerError(f"cannot reach the schedd {name} (pool {where}): {e}") from None
    return schedd, name
