# A drop-in REANA job controller (`scailfin-exec serve`): REANA's workflow engines, unmodified,
# send each step over HTTP as they would to reana-job-controller, and it runs as a Job through
# this project's schedulers. mapping.py turns a request into a Job, store.py keeps every job in
# SQLite across restarts, controller.py follows them, api.py is the HTTP face.
