# REANA's own job controller client (reana_commons.api_client.JobControllerAPIClient, the one the
# engines use, which validates every answer against the specification), run in the serial
# engine's environment by the tests: `client.py submit JSON`, `status ID`, `logs ID`,
# `wait ID SECONDS` (polls as the serial engine does). Prints the answer as JSON; a client error
# exits 1 with its message on stderr.
import json
import sys
import time

from reana_commons.api_client import JobControllerAPIClient


def plain(answer):
    """bravado's model objects as plain JSON values."""
    return answer._as_dict() if hasattr(answer, "_as_dict") else dict(answer)


def main(command, *args):
    client = JobControllerAPIClient("reana-job-controller")
    if command == "submit":
        return plain(client.submit(**json.loads(args[0])))
    if command == "status":
        return plain(client.check_status(args[0]))
    if command == "logs":
        return {"logs": client.get_logs(args[0])}
    if command == "wait":
        deadline = time.monotonic() + float(args[1])
        while True:
            job = plain(client.check_status(args[0]))
            if job["status"] in ("finished", "failed", "stopped") or time.monotonic() > deadline:
                return job
            time.sleep(0.2)
    raise SystemExit(f"unknown command {command}")


if __name__ == "__main__":
    try:
        print(json.dumps(main(*sys.argv[1:])))
    except Exception as e:  # noqa: BLE001  (the test reads the message)
        print(f"{type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)
