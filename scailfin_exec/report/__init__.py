# Seeing a run: one row per step (steps.py), the trace file (trace.py), following any scheduler
# for trace rows and progress (watch.py), and the self-contained HTML report (html.py).
