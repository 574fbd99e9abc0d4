# Many callers at once: 200 jobs POSTed by 20 threads to `scailfin-exec serve` (local scheduler,
# Charliecloud): every one accepted with its own id, every one ends finished, none lost.
import os
from concurrent.futures import ThreadPoolExecutor

from .conftest import workspace
from .test_api import request


def test_two_hundred_jobs_from_twenty_threads_are_all_accepted_and_all_finish(serve):
    service = serve("--runtime", "charliecloud")
    ws = workspace(service.root)
    os.makedirs(os.path.join(ws, "out"))

    def post(i):
        answer = service.post("/jobs", json=request(ws, f"echo {i} > out/{i}.txt", job_name=f"load-{i}"))
        assert answer.status_code == 201, answer.text
        return answer.json()["job_id"]

    with ThreadPoolExecutor(20) as pool:
        job_ids = list(pool.map(post, range(200)))
    assert len(set(job_ids)) == 200
    listed = {job["job_id"] for job in service.get("/jobs").json()}
    assert listed == set(job_ids)
    final = [service.wait(job_id, timeout=900) for job_id in job_ids]
    assert [job["status"] for job in final] == ["finished"] * 200, [j for j in final if j["status"] != "finished"]
    assert sorted(os.listdir(os.path.join(ws, "out"))) == sorted(f"{i}.txt" for i in range(200))
    assert all(open(os.path.join(ws, "out", f"{i}.txt")).read() == f"{i}\n" for i in range(200))
