# scailfin-exec: run containerised CWL and yadage workflow steps through HTCondor, Slurm or locally,
# in whichever container runtime the worker node offers. The embedding API is what this module
# names (a Run, the Job it runs, the Settings it runs with, the Result it gives back):
#
#     from scailfin_exec import Run, Settings
#     with Run(Settings(runtime=["podman"])) as run:
#         result = run.run(run.job("hello", "docker.io/library/alpine", ["echo", "hi"], workspace="/data/ws"))
__version__ = "0.1.0"

# name -> the module it comes from, imported when first asked for (importing the worker package,
# as the shim's helpers do, must not pull in the submit side)
_API = {"Run": "run", "job_fields": "run", "Job": "job", "Bind": "job", "Resources": "job",
        "ImageSources": "job", "Result": "job", "JobError": "job", "Settings": "config",
        "load_settings": "config", "ConfigError": "config", "SchedulerError": "schedulers"}
__all__ = ["__version__", *_API]


def __getattr__(name: str):
    if name not in _API:
        raise AttributeError(f"module 'scailfin_exec' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f".{_API[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(__all__)
