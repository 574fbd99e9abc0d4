# `scailfin-exec serve` killed with SIGKILL in the middle of a 200-job load (20 callers at once, as
# REANA's engines post), on the pool: started again on the same state directory, it answers for
# every job it had accepted, each ends finished with its output, and each ran exactly once (the
# schedd's history counts them). A call the killed process never answered is the caller's to send
# again (REANA's client fails it): it is not counted.
import os
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from ..conftest import wait_for
from ..reana.conftest import serve, workspace  # noqa: F401  (the fixture)
from ..reana.test_api import request

JOBS = 200


@pytest.mark.cell("serve killed (SIGKILL) during a 200-job load", "serve, htcondor (file transfer)",
                  "survives: every accepted job ends finished, each run exactly once")
def test_serve_killed_during_a_200_job_load_accounts_for_every_accepted_job_once(serve, pool):  # noqa: F811
    args = ("--scheduler", "htcondor", "--transfer", "htcondor", "--runtime", "apptainer")
    service = serve(*args)
    ws = workspace(service.root)
    os.makedirs(os.path.join(ws, "out"))
    accepted, lock = {}, threading.Lock()

    def post(i):
        try:
            answer = service.post("/jobs", json=request(ws, f"echo {i} > out/{i}.txt", job_name=f"load-{i}"))
        except requests.RequestException:
            return  # the service was killed under this call
        if answer.status_code == 201:
            with lock:
                accepted[i] = answer.json()["job_id"]

    with ThreadPoolExecutor(20) as callers:
        futures = [callers.submit(post, i) for i in range(JOBS)]
        assert wait_for(lambda: len(accepted) >= JOBS // 2, 300), f"only {len(accepted)} accepted"
        service.proc.kill()
        service.proc.wait()
        for future in futures:
            future.result()
    assert JOBS // 2 <= len(accepted) < JOBS, len(accepted)  # killed in the middle of the load

    again = serve(*args)
    final = {i: again.wait(job_id, timeout=900) for i, job_id in accepted.items()}
    assert {job["status"] for job in final.values()} == {"finished"}, \
        [(i, job["status"]) for i, job in final.items() if job["status"] != "finished"]
    assert all(open(os.path.join(ws, "out", f"{i}.txt")).read() == f"{i}\n" for i in accepted)
    history = pool.history(f'JobBatchName == "reana-{os.path.basename(ws)}"', ["ScailfinJobId"], match=-1)
    ran = Counter(ad["ScailfinJobId"] for ad in history)
    assert {j: ran[j] for j in accepted.values()} == {j: 1 for j in accepted.values()}  # each once, none twice
