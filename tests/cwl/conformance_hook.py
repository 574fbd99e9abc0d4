# Copied into the conformance suite as its conftest.py: cwltest's pytest plugin hands each test to
# scailfin-cwl's own main() in this process (as cwltool's conformance CI does with cwltool's), so
# cwltool parses the CWL schemas once per worker instead of once per test. The options after
# scailfin-cwl's name come, as JSON, from SCAILFIN_CWL_ARGS.
import io
import json
import os
import tempfile

from scailfin_exec.cwl.main import main


def pytest_cwl_execute_test(config, processfile, jobfile):
    outdir = tempfile.mkdtemp(prefix="out-", dir=os.environ.get("SCAILFIN_CWL_OUTDIRS"))
    argv = json.loads(os.environ["SCAILFIN_CWL_ARGS"]) + [f"--outdir={outdir}", "--quiet", processfile]
    stdout = io.StringIO()
    code = main(argv + ([jobfile] if jobfile else []), stdout=stdout)
    text = stdout.getvalue()
    try:
        return code, json.loads(text) if text.strip() else {}
    except json.JSONDecodeError:
        return code or 1, None
