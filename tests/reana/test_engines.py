# REANA's own workflow engines (serial, yadage, cwl), unmodified, in environments of their own,
# run reana-demo-helloworld through `scailfin-exec serve`: the local scheduler with Podman and
# Charliecloud, and the HTCondor test site with Apptainer, the workspace where the worker cannot
# see it (pytest's /tmp: every job on the site has a private one), with HTCondor file transfer
# and with chirp. Each run's greetings file must greet every name, and the result records say
# which runtime ran each step where.
import base64
import json
import os
import shutil
import subprocess
import uuid

import pytest

from .conftest import engine_python, workspace

GREETINGS = "Hello Jane Doe!\nHello Joe Bloggs!\n"


def encoded(value):
    """How REANA's server hands JSON to an engine: one character, then base64."""
    return "x" + base64.b64encode(json.dumps(value).encode()).decode()


def load_yaml(path):
    from ruamel.yaml import YAML

    with open(path) as f:
        return YAML(typ="safe").load(f)


def run_engine(engines, engine, root, reana_file, timeout=600):
    """Lay out a workspace as REANA would (the demo's inputs in it) and run the engine on it."""
    demo = os.path.join(engines, "reana-demo-helloworld")
    workflow_uuid = str(uuid.uuid4())
    ws = workspace(root, workflow_uuid)
    for folder in ("code", "data", "workflow"):  # as REANA uploads them: the user's, writable
        shutil.copytree(os.path.join(demo, folder), os.path.join(ws, folder), copy_function=shutil.copyfile)
    for directory, _, _ in os.walk(ws):
        os.chmod(directory, 0o755)
    spec = load_yaml(os.path.join(demo, reana_file))
    parameters = spec["inputs"].get("parameters", {})
    options = {}
    if engine == "serial":
        workflow = spec["workflow"]["specification"]
    elif engine == "yadage":
        source = os.path.join(ws, spec["workflow"]["file"])
        workflow = json.loads(subprocess.run(
            [engine_python("yadage"), "-c", "import json, os, sys; from yadage.workflow_loader import workflow; "
             "print(json.dumps(workflow(os.path.basename(sys.argv[1]), toplevel=os.path.dirname(sys.argv[1]))))",
             source], capture_output=True, text=True, check=True).stdout)
    else:
        workflow = json.loads(subprocess.run(
            [os.path.join(engines, "cwl", "bin", "cwltool"), "--pack", os.path.join(ws, spec["workflow"]["file"])],
            capture_output=True, text=True, check=True).stdout)
        parameters = load_yaml(os.path.join(ws, parameters["input"]))
    env = dict(os.environ, RABBIT_MQ="memory://", REANA_JOB_CONTROLLER_CONNECTION_CHECK_SLEEP="1")
    if engine == "yadage":
        env["PACKTIVITY_ASYNCBACKEND"] = "reana_workflow_engine_yadage.externalbackend:ExternalBackend:ExternalProxy"
    proc = subprocess.run([os.path.join(engines, engine, "bin", f"run-{engine}-workflow"),
                           "--workflow-uuid", workflow_uuid, "--workflow-workspace", ws,
                           "--workflow-json", encoded(workflow), "--workflow-parameters", encoded(parameters),
                           "--operational-options", encoded(options)],
                          cwd=ws, env=env, capture_output=True, text=True, timeout=timeout)
    proc.workspace = ws
    return proc


OUTPUT = {"serial": "results/greetings.txt", "yadage": "helloworld/greetings.txt", "cwl": "outputs/greetings.txt"}


def check_run(proc, service, engine, runtime, host=None):
    """The greetings are there, every job the engine sent finished, and the result records show
    which runtime ran each step where."""
    output = os.path.join(proc.workspace, OUTPUT[engine])
    assert os.path.exists(output), f"{engine} engine wrote no {OUTPUT[engine]}:\n{proc.stderr[-4000:]}\n" \
                                   f"service log:\n{service.log()[-4000:]}"
    with open(output) as f:
        assert f.read() == GREETINGS
    jobs = service.get("/jobs").json()
    assert jobs and {j["status"] for j in jobs} == {"finished"}, jobs
    records = []
    for job in jobs:
        found = [os.path.join(d, job["job_id"], "job.result.json") for d in _run_dirs(service)]
        found = [path for path in found if os.path.exists(path)]
        assert len(found) == 1, f"no result record of job {job['job_id']}"
        with open(found[0]) as f:
            records.append(json.load(f))
        logs = service.get(f"/jobs/{job['job_id']}/logs").text
        assert f"finished: exit code 0 ({runtime}" in logs, logs
    assert {r["runtime"]["name"] for r in records} == {runtime}
    assert all(r["exit_code"] == 0 and r["host"] for r in records)
    if host is not None:
        assert {r["host"] for r in records} == {host}
    return records


def _run_dirs(service):
    runs = os.path.join(service.state_dir, "runs")
    return [os.path.join(runs, d) for d in os.listdir(runs)]


@pytest.mark.parametrize("runtime", ["podman", "charliecloud"])
@pytest.mark.parametrize("engine,reana_file", [("serial", "reana.yaml"), ("yadage", "reana-yadage.yaml")])
def test_reana_engine_runs_the_demo_through_the_local_scheduler(engines, serve, tmp_path, engine, reana_file,
                                                                runtime):
    service = serve("--runtime", runtime)
    proc = run_engine(engines, engine, service.root, reana_file)
    check_run(proc, service, engine, runtime, host=os.uname().nodename)


def test_reana_cwl_engine_runs_the_demo_through_the_local_scheduler(engines, serve, root_outside_tmp):
    service = serve("--runtime", "charliecloud", root=root_outside_tmp)
    proc = run_engine(engines, "cwl", service.root, "reana-cwl.yaml")
    check_run(proc, service, "cwl", "charliecloud")


@pytest.mark.parametrize("transfer", ["htcondor", "chirp"])
@pytest.mark.parametrize("engine,reana_file", [("serial", "reana-htcondorcern.yaml"),
                                               ("yadage", "reana-yadage-htcondorcern.yaml")])
def test_reana_engine_runs_the_demo_on_the_pool_where_the_worker_cannot_see_the_workspace(
        engines, serve, pool, tmp_path, engine, reana_file, transfer):
    # the demo's htcondorcern variants: compute_backend htcondorcern, htcondor_max_runtime espresso
    service = serve("--scheduler", "htcondor", "--transfer", transfer, "--runtime", "apptainer")
    proc = run_engine(engines, engine, service.root, reana_file)
    records = check_run(proc, service, engine, "apptainer")
    assert {r["stage_in"]["method"].split()[0] for r in records} == {transfer}
    history = pool.history(f'JobBatchName == "reana-{os.path.basename(proc.workspace)}"',
                           ["ClusterId", "ProcId", "ScailfinImage"], match=-1)
    assert len(list(history)) == len(records)
