# The HTTP face of the job controller: reana-job-controller's REST API as REANA's engines call it
# (Flask for routing, JSON and the body limit; waitress, a pure-Python threaded WSGI server, to
# serve it), the token check for addresses other than loopback, and `scailfin-exec serve`.

from __future__ import annotations

import hmac
import ipaddress
import logging
import os
import signal
import socket
import sys

from flask import Flask, Response, current_app, jsonify, request
from werkzeug.exceptions import HTTPException

from ..schedulers import SchedulerError
from .controller import Controller, NotFound, Refused
from .mapping import MAX_BODY, RequestError
from .store import Row

log = logging.getLogger("scailfin_exec.reana")
DEFAULT_LISTEN = "127.0.0.1:5000"  # where REANA's engines look for their job controller (hard-coded)
DEFAULT_ROOTS = ["/var/reana"]  # REANA's workspaces: /var/reana/users/<user>/workflows/<workflow>


def job_response(controller: Controller, row: Row) -> dict:
    """A Job as the specification has it (exactly its fields: the client rejects others)."""
    return {"job_id": row.job_id, "docker_img": row.docker_img, "cmd": row.cmd, "cvmfs_mounts": row.cvmfs_mounts,
            "status": row.status, "restart_count": row.restart_count,
            "max_restart_count": controller.max_restarts(row)}


def create_app(controller: Controller, token: str | None = None) -> Flask:
    app = Flask("scailfin_exec.reana")
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY
    app.extensions["scailfin"] = controller
    if token is not None:
        app.before_request(lambda: _authorise(token))
    app.add_url_rule("/jobs", view_func=_list_jobs, methods=["GET"])
    app.add_url_rule("/jobs", view_func=_create_job, methods=["POST"])
    app.add_url_rule("/jobs/<job_id>", view_func=_get_job, methods=["GET"])
    app.add_url_rule("/jobs/<job_id>/logs", view_func=_get_logs, methods=["GET"])
    app.add_url_rule("/jobs/<job_id>/", view_func=_delete_job, methods=["DELETE"])
    app.add_url_rule("/jobs/<job_id>", view_func=_delete_job, methods=["DELETE"], endpoint="delete_without_slash")
    app.add_url_rule("/job_cache", view_func=_job_cache, methods=["GET"])
    # the specification says DELETE, reana-job-controller answers GET
    app.add_url_rule("/shutdown", view_func=_shutdown, methods=["GET", "DELETE"])
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected)
    return app


def _controller() -> Controller:
    return current_app.extensions["scailfin"]


def _message(status: int, text: str):
    return jsonify({"message": text}), status


def _authorise(token: str):
    given = request.headers.get("Authorization", "")
    given = given[len("Bearer "):] if given.startswith("Bearer ") else request.args.get("access_token", "")
    if not hmac.compare_digest(given.encode(), token.encode()):
        return _message(401, "a valid token is required (Authorization: Bearer TOKEN, or ?access_token=TOKEN)")
    return None


def _list_jobs():
    controller = _controller()
    return jsonify([job_response(controller, row) for row in controller.rows()])


def _create_job():
    body = request.get_json(silent=True, force=True)
    if body is None:
        return _message(400, "the body is not JSON (a JobRequest object is expected)")
    try:
        return jsonify({"job_id": _controller().submit(body)}), 201
    except RequestError as e:
        return _message(400, str(e))
    except Refused as e:
        return _message(403, str(e))
    except SchedulerError as e:
        log.error("a job could not be submitted: %s", e)
        return _message(500, f"the scheduler could not take the job: {e}")


def _get_job(job_id):
    try:
        return jsonify(job_response(_controller(), _controller().status(job_id)))
    except NotFound:
        return _message(404, f"the job {job_id} does not exist")


def _get_logs(job_id):
    try:
        return Response(_controller().logs(job_id), mimetype="text/plain")
    except NotFound:
        return _message(404, f"the job {job_id} does not exist")


def _delete_job(job_id):
    try:
        _controller().stop(job_id)
    except NotFound:
        return _message(404, f"the job {job_id} does not exist")
    return "", 204


def _job_cache():
    return jsonify({"cached": False, "result_path": None})


def _shutdown():
    stopped = _controller().shutdown()
    return jsonify({"message": f"All jobs stopped ({stopped} were running or queued); no new jobs are taken."})


def _http_error(e):
    if e.code == 413:
        return _message(400, f"the body is larger than {MAX_BODY} bytes")
    return _message(e.code, e.description)


def _unexpected(e):
    log.exception("a request failed")
    return _message(500, f"internal error: {type(e).__name__}: {e}")


def parse_listen(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    host = host.strip("[]")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"--listen: {value!r} is not HOST:PORT")
    return host, int(port)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def read_token(path: str) -> str:
    """The token, from a file only its owner can read (it grants running commands as this user)."""
    try:
        info = os.stat(path)
        with open(path, encoding="utf-8") as f:
            token = f.read().strip()
    except OSError as e:
        raise ValueError(f"--token-file {path}: {e.strerror or e}") from None
    if info.st_mode & 0o077:
        raise ValueError(f"--token-file {path}: readable by others (mode {info.st_mode & 0o777:o}); chmod 600 it")
    if len(token) < 16:
        raise ValueError(f"--token-file {path}: the token must have at least 16 characters")
    return token


def serve(controller: Controller, host: str, port: int, token: str | None, threads: int = 16) -> None:
    """Serve until SIGTERM or SIGINT; then stop following (jobs go on, a restart takes them over)."""
    from waitress import create_server

    try:
        server = create_server(create_app(controller, token), host=host, port=port, threads=threads,
                               ident="scailfin-exec", clear_untrusted_proxy_headers=True)
    except (OSError, socket.gaierror) as e:
        controller.close()
        raise SystemExit(f"scailfin-exec serve: cannot listen on {host}:{port}: {e.strerror or e}") from None

    def stop(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    log.info("listening on http://%s:%d%s; workspace roots %s; state in %s", host, port,
             " (token required)" if token else "", ", ".join(controller.roots), controller.state_dir)
    print(f"scailfin-exec serve: ready on http://{host}:{port}", file=sys.stderr, flush=True)
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
        controller.close()
        log.info("stopped; jobs still running go on and are taken over by the next start")
