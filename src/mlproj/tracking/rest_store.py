"""The store for ``http(s)://`` tracking URIs: an MLflow tracking server's REST API (2.0).

Batches follow the server's limits (1000 entities per ``log-batch``, of which at most 100 params
and 100 tags, at most 1000 metrics); searches and metric histories are paged.
"""

from __future__ import annotations

import getpass
import math
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from mlproj.errors import ExecutionException
from mlproj.statuses import RunStatus
from mlproj.tags import MLFLOW_RUN_NAME
from mlproj.tracking.base import TrackingStore
from mlproj.tracking.common import now_ms, run_not_found
from mlproj.tracking.entities import Experiment, Metric, Run, RunInfo
from mlproj.tracking.http_client import HttpClient, HttpSettings
from mlproj.tracking.limits import MAX_ENTITIES_PER_BATCH, MAX_PARAMS_TAGS_PER_BATCH

PAGE_SIZE = 1000
NOT_FOUND = frozenset({404})


class RestStore(TrackingStore):
    """A remote MLflow tracking server, reached over HTTP with one reused session."""

    def __init__(self, uri: str, http_settings: HttpSettings | None = None) -> None:
        self.tracking_uri = uri.rstrip("/")
        self.http = HttpClient(self.tracking_uri, http_settings)
        # run id -> artifact URI, so uploading the log costs no extra lookup.
        self._artifact_uris: dict[str, str] = {}

    # -- experiments -------------------------------------------------------------------------
    def get_experiment(self, experiment_id: str) -> Experiment | None:
        body = self.http.call(
            "GET",
            "experiments/get",
            params={"experiment_id": experiment_id},
            allow_status=NOT_FOUND | {400},  # older servers answer 400 for a non-numeric id
        )
        return _experiment(body["experiment"]) if body else None

    def get_experiment_by_name(self, name: str) -> Experiment | None:
        body = self.http.call(
            "GET",
            "experiments/get-by-name",
            params={"experiment_name": name},
            allow_status=NOT_FOUND,
        )
        return _experiment(body["experiment"]) if body else None

    def create_experiment(self, name: str) -> str:
        response = self.http.request(
            "POST", self.http.api_url("experiments/create"), json={"name": name}
        )
        if response.status_code == 200:
            return str(response.json()["experiment_id"])
        # RESOURCE_ALREADY_EXISTS: another client created it first; its id is the answer.
        found = self.get_experiment_by_name(name)
        if found is not None:
            return found.experiment_id
        raise self.http.error("POST", "experiments/create", response)

    def list_experiments(self) -> list[Experiment]:
        return [
            _experiment(e)
            for e in self._pages("experiments/search", "experiments", {"view_type": "ACTIVE_ONLY"})
        ]

    # -- runs --------------------------------------------------------------------------------
    def create_run(
        self,
        experiment_id: str,
        *,
        run_name: str | None,
        tags: Mapping[str, str],
        user_id: str,
        start_time: int | None = None,
    ) -> RunInfo:
        payload: dict[str, Any] = {
            "experiment_id": experiment_id,
            "user_id": user_id or getpass.getuser(),
            "start_time": start_time if start_time is not None else now_ms(),
            "tags": _key_values(tags),
        }
        if run_name:
            payload["run_name"] = run_name
        body = self.http.call("POST", "runs/create", json=payload)
        assert body is not None
        info = _run(body["run"]).info
        self._artifact_uris[info.run_id] = info.artifact_uri
        return info

    def get_run(self, run_id: str) -> Run:
        body = self.http.call("GET", "runs/get", params={"run_id": run_id}, allow_status=NOT_FOUND)
        if body is None:
            raise run_not_found(run_id, self.http.display_url)
        run = _run(body["run"])
        self._artifact_uris[run_id] = run.info.artifact_uri
        return run

    def log_batch(
        self,
        run_id: str,
        *,
        params: Mapping[str, str] | None = None,
        tags: Mapping[str, str] | None = None,
        metrics: Sequence[Metric] = (),
    ) -> None:
        for batch in _batches(params or {}, tags or {}, metrics):
            self.http.call("POST", "runs/log-batch", json={"run_id": run_id, **batch})

    def set_terminated(self, run_id: str, status: str, end_time: int | None = None) -> None:
        self.http.call(
            "POST",
            "runs/update",
            json={
                "run_id": run_id,
                "status": status,
                "end_time": end_time if end_time is not None else now_ms(),
            },
        )

    def search_runs(
        self,
        experiment_ids: Sequence[str],
        *,
        status: str | None = None,
        params: Mapping[str, str] | None = None,
        max_results: int = 1000,
    ) -> list[Run]:
        if not experiment_ids or max_results <= 0:
            return []
        query: dict[str, Any] = {
            "experiment_ids": list(experiment_ids),
            "filter": build_filter(status=status, params=params),
            "run_view_type": "ACTIVE_ONLY",
            "order_by": ["attributes.start_time DESC"],
        }
        return [_run(r) for r in self._pages("runs/search", "runs", query, limit=max_results)]

    def get_metric_history(self, run_id: str, key: str) -> list[Metric]:
        metrics: list[Metric] = []
        token: str | None = None
        while True:
            params: dict[str, str | int] = {
                "run_id": run_id,
                "metric_key": key,
                "max_results": 25000,
            }
            if token:
                params["page_token"] = token
            body = self.http.call("GET", "metrics/get-history", params=params) or {}
            metrics.extend(_metric(m) for m in body.get("metrics", []))
            token = body.get("next_page_token")
            if not token:
                return metrics

    # -- artifacts ---------------------------------------------------------------------------
    def log_artifact(self, run_id: str, local_path: Path, artifact_path: str | None = None) -> None:
        artifact_uri = self._artifact_uris.get(run_id) or self.get_run(run_id).info.artifact_uri
        dest = _join(artifact_path, local_path.name)
        proxied = self._proxy_url(artifact_uri, dest)
        if proxied is None:
            from mlproj.tracking.artifacts import fsspec_upload

            fsspec_upload(artifact_uri, local_path, dest)
            return
        with local_path.open("rb") as body:
            response = self.http.request("PUT", proxied, data=body)
        if response.status_code != 200:
            raise self.http.error("PUT", f"artifact {dest}", response)

    def read_artifact(self, run: Run, path: str) -> bytes | None:
        """The bytes of one artifact file of ``run``, or None when it does not exist."""
        proxied = self._proxy_url(run.info.artifact_uri, path)
        if proxied is None:
            from mlproj.tracking.artifacts import fsspec_read

            return fsspec_read(run.info.artifact_uri, path)
        response = self.http.request("GET", proxied)
        if response.status_code == 404 and not self._artifact_listed(run.info.artifact_uri, path):
            return None
        if response.status_code != 200:
            raise self.http.error("GET", f"artifact {path}", response)
        return response.content

    def _artifact_listed(self, artifact_uri: str, path: str) -> bool:
        """Whether the server's artifact listing holds file ``path``: a bare 404 can come from
        a proxy in front of the server, or a server not serving artifacts, as well as from a
        missing file. A listing that fails is an error, not a missing log."""
        folder, _, name = path.strip("/").rpartition("/")
        listing = self._proxy_url(artifact_uri, "", listing=True)
        assert listing is not None  # only called for proxied locations
        rel = urlsplit(artifact_uri).path.strip("/")
        where = "/".join(p for p in (rel, folder) if p)
        response = self.http.request("GET", listing, params={"path": where})
        if response.status_code != 200:
            raise self.http.error("GET", f"artifact listing of {where or '/'}", response)
        try:
            files = response.json().get("files") or []
        except ValueError:
            raise ExecutionException(
                f"MLflow tracking server {self.http.display_url} answered the artifact listing "
                f"of {where or '/'} with a body that is not JSON"
            ) from None
        return any(f.get("path") == name and not f.get("is_dir") for f in files)

    def _proxy_url(self, artifact_uri: str, path: str, *, listing: bool = False) -> str | None:
        """The artifact proxy URL for ``mlflow-artifacts:`` URIs, else None (with ``listing``:
        the listing endpoint of that server, which takes the folder as a parameter).

        ``mlflow-artifacts:/0/<run>/artifacts`` lives on this server;
        ``mlflow-artifacts://host:port/...`` names another one (same scheme as the tracking URI).
        """
        parts = urlsplit(artifact_uri)
        if parts.scheme != "mlflow-artifacts":
            return None
        if parts.netloc:
            base = f"{urlsplit(self.tracking_uri).scheme}://{parts.netloc}"
        else:
            base = self.http.base_url
        if listing:
            return f"{base}/api/2.0/mlflow-artifacts/artifacts"
        rel = "/".join(p for p in (parts.path.strip("/"), path.strip("/")) if p)
        return f"{base}/api/2.0/mlflow-artifacts/artifacts/{quote(rel)}"

    # -- helpers -----------------------------------------------------------------------------
    def _pages(
        self, endpoint: str, field: str, query: Mapping[str, Any], limit: int | None = None
    ) -> Iterator[dict[str, Any]]:
        token: str | None = None
        seen = 0
        while True:
            size = PAGE_SIZE if limit is None else min(PAGE_SIZE, limit - seen)
            payload = {**query, "max_results": size}
            if token:
                payload["page_token"] = token
            body = self.http.call("POST", endpoint, json=payload) or {}
            for item in body.get(field, []):
                yield item
                seen += 1
            token = body.get("next_page_token")
            if not token or (limit is not None and seen >= limit):
                return


def build_filter(*, status: str | None = None, params: Mapping[str, str] | None = None) -> str:
    """An MLflow search filter string for a status and exact param values."""
    clauses = []
    if status:
        clauses.append(f"attributes.status = {_quote_value(status.upper())}")
    for key, value in (params or {}).items():
        if "`" in key:
            raise ExecutionException(
                f"Param filter {key!r}: keys with a backtick cannot be searched"
            )
        clauses.append(f"params.`{key}` = {_quote_value(value)}")
    return " and ".join(clauses)


def _quote_value(value: str) -> str:
    if "'" not in value:
        return f"'{value}'"
    if '"' not in value:
        return f'"{value}"'
    raise ExecutionException(
        f"Filter value {value!r} contains both ' and \" quotes; MLflow search cannot match it"
    )


def _batches(
    params: Mapping[str, str], tags: Mapping[str, str], metrics: Sequence[Metric]
) -> Iterator[dict[str, list[dict[str, Any]]]]:
    """Split params, tags and metrics into payloads within MLflow's log-batch limits."""
    param_items = _key_values(params)
    tag_items = _key_values(tags)
    metric_items = [
        {"key": m.key, "value": _json_float(m.value), "timestamp": m.timestamp, "step": m.step}
        for m in metrics
    ]
    while param_items or tag_items or metric_items:
        batch: dict[str, list[dict[str, Any]]] = {}
        room = MAX_ENTITIES_PER_BATCH
        take = min(MAX_PARAMS_TAGS_PER_BATCH, len(param_items))
        if take:
            batch["params"], param_items = param_items[:take], param_items[take:]
            room -= take
        take = min(MAX_PARAMS_TAGS_PER_BATCH, len(tag_items), room)
        if take:
            batch["tags"], tag_items = tag_items[:take], tag_items[take:]
            room -= take
        take = min(room, len(metric_items))
        if take:
            batch["metrics"], metric_items = metric_items[:take], metric_items[take:]
        yield batch


def _json_float(value: float) -> float | str:
    # JSON has no NaN/Infinity; MLflow's REST API accepts these strings for them.
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def _key_values(mapping: Mapping[str, str]) -> list[dict[str, Any]]:
    return [{"key": k, "value": str(v)} for k, v in mapping.items()]


def _join(*parts: str | None) -> str:
    return "/".join(p.strip("/") for p in parts if p and p.strip("/"))


def _experiment(data: Mapping[str, Any]) -> Experiment:
    return Experiment(
        experiment_id=str(data["experiment_id"]),
        name=str(data.get("name", "")),
        artifact_location=str(data.get("artifact_location", "")),
        lifecycle_stage=str(data.get("lifecycle_stage", "active")),
        creation_time=_opt_int(data.get("creation_time")),
        tags={t["key"]: t.get("value", "") for t in data.get("tags", [])},
    )


def _run(data: Mapping[str, Any]) -> Run:
    info = data.get("info", {})
    body = data.get("data", {})
    run_id = str(info.get("run_id") or info.get("run_uuid"))
    tags = {t["key"]: t.get("value", "") for t in body.get("tags", [])}
    return Run(
        info=RunInfo(
            run_id=run_id,
            experiment_id=str(info.get("experiment_id", "")),
            run_name=str(info.get("run_name") or tags.get(MLFLOW_RUN_NAME, "")),
            status=str(info.get("status", RunStatus.RUNNING)),
            start_time=_opt_int(info.get("start_time")) or 0,
            end_time=_opt_int(info.get("end_time")),
            artifact_uri=str(info.get("artifact_uri", "")),
            user_id=str(info.get("user_id", "")),
            lifecycle_stage=str(info.get("lifecycle_stage", "active")),
        ),
        params={p["key"]: p.get("value", "") for p in body.get("params", [])},
        tags=tags,
        metrics={m["key"]: float(m.get("value", 0.0)) for m in body.get("metrics", [])},
    )


def _metric(data: Mapping[str, Any]) -> Metric:
    return Metric(
        key=str(data["key"]),
        value=float(data.get("value", 0.0)),
        timestamp=_opt_int(data.get("timestamp")) or 0,
        step=_opt_int(data.get("step")) or 0,
    )


def _opt_int(value: Any) -> int | None:
    if value is None or value == "":
        return None
    return int(value)
