"""Deploy, push and append: what ``tb deploy``, ``tb push`` and ``tb datasource append`` call.

- ``POST /v1/deploy`` (current CLI): the project's datafiles as multipart parts; each is parsed
  and loaded (new tables created, pipes replaced), or with ``check=true`` only validated. The
  deployment is ready and live at once; ``/v1/deployments`` lists it.
- ``POST /v0/datasources`` and ``/v0/pipes`` (Classic CLI's ``tb push``): one datafile each.
- ``POST /v1/datasources/<name>/append`` and ``POST /v0/datasources?mode=append``: NDJSON rows
  through the Events API's path; the import is done when the answer comes, and its job
  (``/v0/jobs/<id>``) says so, with the CLI's row counts.

Deployed datafiles are kept under ``<data>/deployed`` and loaded again at start. What the local
server cannot do (remove a resource, change a table's schema in place, fetch a URL, read CSV or
Parquet files) is refused with a JSON error that says so.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from pathlib import Path
from typing import Any

from tornado import web

from ..datafiles import DatafileError, Datasource, Pipe, parse_datasource, parse_pipe
from .engine import QueryError
from .events_body import MAX_REQUEST_BYTES, BodyError
from .routes_base import ApiHandler, State
from .routes_cli import DatasourcesHandler, PipesHandler, datasource_doc, pipe_doc, stamp
from .routes_events import ingest_body

__all__ = ["deploy_routes", "deployed_dir"]

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def deployed_dir(data_dir: Path) -> Path:
    return data_dir / "deployed"


class Jobs:
    """Finished jobs (imports, deployments) by id, as ``/v0/jobs`` shows them."""

    def __init__(self) -> None:
        self.by_id: dict[str, dict[str, Any]] = {}
        self.deployments: list[dict[str, Any]] = []

    def add(self, kind: str, **fields: Any) -> dict[str, Any]:
        job_id = str(uuid.uuid4())
        now = stamp(time.time())
        job = {
            "id": job_id,
            "job_id": job_id,
            "kind": kind,
            "status": "done",
            "created_at": now,
            "updated_at": now,
        }
        job.update(fields)
        self.by_id[job_id] = job
        return job


def _jobs(state: State) -> Jobs:
    jobs = getattr(state, "jobs", None)
    if jobs is None:
        jobs = Jobs()
        state.jobs = jobs  # type: ignore[attr-defined]
    return jobs


def _parse(
    files: list[tuple[str, str]],
) -> tuple[dict[str, Datasource], dict[str, Pipe], list[dict[str, str]]]:
    datasources: dict[str, Datasource] = {}
    pipes: dict[str, Pipe] = {}
    errors: list[dict[str, str]] = []
    for filename, text in files:
        stem, _, suffix = Path(filename).name.rpartition(".")
        if suffix not in {"datasource", "pipe"}:
            if suffix == "connection":
                errors.append(
                    {"filename": filename, "error": "connections are not supported by the local server"}
                )
            continue
        if not _NAME.match(stem):
            errors.append({"filename": filename, "error": f"{stem!r} is not a valid resource name"})
            continue
        try:
            if suffix == "datasource":
                datasources[stem] = parse_datasource(text, stem, filename)
            else:
                pipes[stem] = parse_pipe(text, stem, filename)
        except DatafileError as exc:
            errors.append({"filename": filename, "error": str(exc)})
    return datasources, pipes, errors


def deploy(state: State, files: list[tuple[str, str]], check: bool) -> dict[str, Any]:
    """Validate (and unless ``check``, load) ``files``: the ``/v1/deploy`` answer."""
    engine = state.engine
    datasources, pipes, errors = _parse(files)
    for name, ds in datasources.items():
        old = engine.datasources.get(name)
        if old is not None and old.columns != ds.columns:
            errors.append(
                {
                    "filename": f"{name}.datasource",
                    "error": f"Data Source '{name}' exists with other columns: the local server cannot "
                    "migrate a table in place; start it with a fresh --data folder",
                }
            )
    new_ds = [n for n in datasources if n not in engine.datasources]
    changed_pipes = [n for n in pipes if n in engine.pipes and engine.pipes[n] != pipes[n]]
    new_pipes = [n for n in pipes if n not in engine.pipes]
    jobs = _jobs(state)
    deployment: dict[str, Any] = {
        "id": str(len(jobs.deployments) + 1),
        "status": "failed" if errors else "data_ready",
        "live": not errors and not check,
        "errors": errors,
        "feedback": [],
        "new_datasource_names": new_ds,
        "changed_datasource_names": [],
        "deleted_datasource_names": [],
        "new_pipe_names": new_pipes,
        "changed_pipe_names": changed_pipes,
        "deleted_pipe_names": [],
        "new_data_connector_ids": [],
        "created_at": stamp(time.time()),
    }
    if errors:
        return {"result": "failed", "deployment": deployment}
    if not new_ds and not new_pipes and not changed_pipes and not check:
        return {"result": "no_changes", "deployment": deployment}
    if check:
        return {"result": "success", "deployment": deployment}
    try:
        engine.load(datasources, pipes)
    except (DatafileError, QueryError) as exc:
        deployment.update(status="failed", live=False, errors=[{"error": str(exc)}])
        return {"result": "failed", "deployment": deployment}
    now = time.time()
    for name in datasources:
        state.loaded.setdefault(f"ds:{name}", now)
    for name in pipes:
        state.loaded[f"pipe:{name}"] = now
    _keep(engine.data_dir, files)
    for earlier in jobs.deployments:
        earlier["live"], earlier["status"] = False, "deleted"
    jobs.deployments.append(deployment)
    jobs.add("deployment", deployment_id=deployment["id"], job_url="")
    return {"result": "success", "deployment": deployment}


def _keep(data_dir: Path, files: list[tuple[str, str]]) -> None:
    """Write deployed datafiles under <data>/deployed so a restart loads them again."""
    for filename, text in files:
        name = Path(filename).name
        if not name.endswith((".datasource", ".pipe")):
            continue
        folder = deployed_dir(data_dir) / ("datasources" if name.endswith(".datasource") else "pipes")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text, encoding="utf-8")


class DeployHandler(ApiHandler):
    async def post(self) -> None:
        if not self.authorised("ADMIN"):
            return
        files = [
            (f.filename, f.body.decode("utf-8", "replace"))
            for key, parts in self.request.files.items()
            if key.startswith("data_project")
            for f in parts
        ]
        if not files:
            return self.fail(
                400, "No datafiles in the request: send them as multipart 'data_project://' parts"
            )
        check = self.get_query_argument("check", "false") == "true"
        self.finish(await self.blocking(deploy, self.state, files, check))


class DeploymentsHandler(ApiHandler):
    def get(self, deployment_id: str | None = None) -> None:
        if not self.authorised("ADMIN"):
            return
        deployments = _jobs(self.state).deployments
        if deployment_id is None:
            self.finish({"deployments": [d for d in deployments if d["status"] != "deleted"][::-1]})
            return
        found = next((d for d in deployments if d["id"] == deployment_id), None)
        if found is None:
            return self.fail(404, f"Deployment {deployment_id} not found")
        self.finish({"deployment": found})

    def post(self, deployment_id: str | None = None, action: str | None = None) -> None:
        if self.authorised("ADMIN"):
            self.get(deployment_id)  # every deployment is live as soon as it is ready

    def delete(self, deployment_id: str | None = None) -> None:
        if self.authorised("ADMIN"):
            self.fail(
                400, "The local server cannot discard a deployment: its resources stay until restarted fresh"
            )


class JobsHandler(ApiHandler):
    def get(self, job_id: str | None = None) -> None:
        if not self.authorised("ADMIN"):
            return
        jobs = _jobs(self.state).by_id
        if job_id is None:
            self.finish({"jobs": list(jobs.values())})
            return
        job = jobs.get(job_id)
        if job is None:
            return self.fail(404, f"Job {job_id} not found")
        self.finish(job)


def append(state: State, name: str, body: bytes, gzipped: bool) -> dict[str, Any]:
    result = ingest_body(state.engine, name, body, gzipped)
    block = {
        "process_return": [
            {"lines": result.successful_rows, "quarantine": result.quarantined_rows, "bytes": len(body)}
        ]
    }
    job = _jobs(state).add(
        "import", datasource={"name": name}, blocks=[block], statistics={"row_count": result.successful_rows}
    )
    if result.quarantined_rows:
        job["quarantine_rows"] = result.quarantined_rows
    return job


class _Appending(ApiHandler):
    async def _append(self, name: str, body: bytes, fmt: str) -> None:
        if name not in self.state.engine.datasources:
            return self.fail(404, f"Data Source '{name}' not found")
        if self.get_query_argument("url", None):
            return self.fail(
                400, "The local server does not fetch URLs: append a local file or send --events"
            )
        if fmt not in {"ndjson", "json"}:
            return self.fail(400, f"format={fmt} is not supported by the local server: append NDJSON")
        if len(body) > MAX_REQUEST_BYTES:
            return self.fail(
                413, f"Request body too large: {len(body)} bytes, the limit is {MAX_REQUEST_BYTES}"
            )
        gzipped = self.request.headers.get("Content-Encoding", "").lower() == "gzip"
        try:
            job = await self.blocking(append, self.state, name, body, gzipped)
        except BodyError as exc:
            return self.fail(exc.status, str(exc))
        except QueryError as exc:
            return self.fail(500, f"Insert failed, retry: {exc}")
        ds = datasource_doc(self.state, self.state.engine.datasources[name])
        self.finish(
            {
                "id": job["id"],
                "import_id": job["id"],
                "job_id": job["id"],
                "status": "done",
                "datasource": {"id": ds["id"], "name": name},
                "blocks": job["blocks"],
                "job": job,
            }
        )


class AppendHandler(_Appending):
    """``POST /v1/datasources/<name>/(append|replace)``: the body is the data."""

    async def post(self, name: str, mode: str) -> None:
        # Appending is a DATASOURCES:APPEND scope; replacing (refused below anyway) is the admin's.
        if not self.authorised("DATASOURCES:APPEND" if mode == "append" else "ADMIN", name):
            return
        if mode != "append":
            return self.fail(400, f"mode {mode} is not supported by the local server: only append")
        await self._append(name, self.request.body, self.get_query_argument("format", "ndjson"))


class DatasourcesRootHandler(_Appending, DatasourcesHandler):
    """``POST /v0/datasources``: ``mode=append`` with a file part (Classic ``tb datasource append``),
    or a ``.datasource`` definition (Classic ``tb push``)."""

    async def post(self) -> None:
        mode = self.get_argument("mode", "create")
        name = self.get_argument("name", "")
        # Appending is a DATASOURCES:APPEND scope; defining a datasource is the admin's.
        if not self.authorised("DATASOURCES:APPEND" if mode == "append" else "ADMIN", name):
            return
        if mode == "append":
            parts = [f for parts in self.request.files.values() for f in parts]
            body = parts[0].body if parts else self.request.body
            fmt = self.get_query_argument("format", "ndjson")
            if parts and parts[0].filename.endswith(".csv"):
                fmt = "csv"
            return await self._append(name, body, fmt)
        schema = self.get_argument("schema", None)
        if mode == "create" and schema is not None:
            text = f"SCHEMA >\n    {schema}\n"
            for key in ("engine", "engine_sorting_key", "engine_partition_key", "engine_ver", "engine_ttl"):
                value = self.get_argument(key, None)
                if value:
                    text += f'{key.upper()} "{value}"\n'
            result = await self.blocking(deploy, self.state, [(f"{name}.datasource", text)], False)
            if result["result"] == "failed":
                return self.fail(400, "; ".join(e["error"] for e in result["deployment"]["errors"]))
            ds = self.state.engine.datasources[name]
            self.finish({"datasource": datasource_doc(self.state, ds)})
            return
        self.fail(400, f"mode={mode} is not supported by the local server: create (with schema) or append")


class PipesRootHandler(PipesHandler):
    """``POST /v0/pipes`` with a pipe definition (JSON, Classic ``tb push``)."""

    async def post(self) -> None:
        if not self.authorised("ADMIN"):
            return
        try:
            doc = json.loads(self.request.body or b"{}")
        except ValueError:
            doc = {}
        name = doc.get("name") or self.get_query_argument("name", "")
        nodes = doc.get("nodes") or []
        if not name or not nodes:
            return self.fail(400, 'Send the pipe as JSON: {"name": ..., "nodes": [{"name", "sql"}, ...]}')
        text = "".join(
            f"NODE {n['name']}\nSQL >\n"
            + "".join(f"    {line}\n" for line in str(n["sql"]).splitlines())
            + (f"TYPE {n['type']}\n" if n.get("type") else "")
            + "\n"
            for n in nodes
        )
        result = await self.blocking(deploy, self.state, [(f"{name}.pipe", text)], False)
        if result["result"] == "failed":
            return self.fail(400, "; ".join(e["error"] for e in result["deployment"]["errors"]))
        self.finish(pipe_doc(self.state, self.state.engine.pipes[name]))


def deploy_routes(args: dict[str, Any]) -> list[tuple[str, type[web.RequestHandler], dict[str, Any]]]:
    return [
        (r"/v0/datasources/?", DatasourcesRootHandler, args),
        (r"/v0/pipes/?", PipesRootHandler, args),
        (r"/v1/deploy/?", DeployHandler, args),
        (r"/v1/deployments/?", DeploymentsHandler, args),
        (r"/v1/deployments/([0-9]+)/?", DeploymentsHandler, args),
        (r"/v1/deployments/([0-9]+)/(set-live|promote)/?", DeploymentsHandler, args),
        (r"/v0/jobs/?", JobsHandler, args),
        (r"/v0/jobs/([^/]+)/?", JobsHandler, args),
        (r"/v1/datasources/([A-Za-z0-9_]+)/(append|replace)/?", AppendHandler, args),
    ]
