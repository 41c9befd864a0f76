"""``ApiWorkflowClient``: lightly's Python client, talking to a ``selfsup serve`` server.

    from selfsup.api import ApiWorkflowClient

    client = ApiWorkflowClient(token="selfsup_...", base_url="http://127.0.0.1:8000")
    client.create_dataset("my-dataset")
    client.set_local_config(resource_path="/data/images")
    scheduled_run_id = client.schedule_compute_worker_run(
        worker_config={"stopping_condition": {"n_samples": 0.1}}
    )
    for info in client.compute_worker_run_info_generator(scheduled_run_id):
        print(info.state, info.message)
    run = client.get_compute_worker_run_from_scheduled_run(scheduled_run_id)
    client.download_compute_worker_run_report_pdf(run, "report.pdf")

The token comes from ``token=`` or ``$SELFSUP_TOKEN``, the server from ``base_url=`` or
``$SELFSUP_SERVER_LOCATION`` (default ``http://127.0.0.1:8000``).

Lists are fetched page by page (the server answers at most 1000 items a request) until the
last one. Reads and downloads are retried through server restarts and network cuts with
:mod:`selfsup.api.retry`'s back-off for up to ``retry_give_up_after`` seconds (5 minutes by
default), so a script polling a run outlives a restart of the server; calls that change
something (create, schedule, cancel, delete) are sent once.
"""

from __future__ import annotations

import base64
import dataclasses
import math
import os
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlsplit

import httpx

from selfsup.api._http import HttpApi
from selfsup.api.retry import RetryPolicy, call_with_retry
from selfsup.openapi_generated.swagger_client.models import (
    CreateDockerWorkerRegistryEntryRequest,
    DatasetCreateRequest,
    DatasetData,
    DatasetType,
    DatasourceConfigAzure,
    DatasourceConfigGCS,
    DatasourceConfigLOCAL,
    DatasourceConfigS3,
    DatasourceData,
    DatasourcePurpose,
    DockerRunArtifactData,
    DockerRunArtifactType,
    DockerRunData,
    DockerRunScheduledCreateRequest,
    DockerRunScheduledData,
    DockerRunScheduledPriority,
    DockerRunScheduledState,
    DockerRunState,
    DockerWorkerRegistryEntryData,
)
from selfsup.openapi_generated.swagger_client.rest import ApiException

STATE_SCHEDULED_ID_NOT_FOUND = "CANCELED_OR_NOT_EXISTING"
DEFAULT_THUMBNAIL_SUFFIX = ".selfsup/thumbnails/[filename]_thumb.[extension]"

# The most items the server puts on one page (selfsup.server.pages.MAX_PAGE_SIZE, not
# imported: the client does not need the server's dependencies).
MAX_PAGE_SIZE = 1000
DEFAULT_RETRY_GIVE_UP_AFTER = 300.0
# Back-off of the client's retries: a user waits for the answer, so the longest single wait
# is shorter than a worker's (60 s).
CLIENT_RETRY_BASE = 0.5
CLIENT_RETRY_CAP = 10.0

T = TypeVar("T")


class ArtifactNotExist(Exception):  # noqa: N818  (lightly's name)
    """The run has no artifact of the requested type (yet)."""


@dataclasses.dataclass(frozen=True)
class ComputeWorkerRunInfo:
    """State and last message of a scheduled run, for monitoring it.

    ``state`` is a :class:`DockerRunState` value, ``"OPEN"`` while the job waits for a worker
    (also between a crashed attempt and its retry), or ``"CANCELED_OR_NOT_EXISTING"``.
    """

    state: str
    message: str

    def in_end_state(self) -> bool:
        """Whether the job is over (completed, failed, aborted, crashed for good, canceled)."""
        return self.state in (
            DockerRunState.COMPLETED,
            DockerRunState.ABORTED,
            DockerRunState.FAILED,
            DockerRunState.CRASHED,
            STATE_SCHEDULED_ID_NOT_FOUND,
        )

    def ended_successfully(self) -> bool:
        """Whether the job completed; ValueError while it is still running."""
        if not self.in_end_state():
            raise ValueError("Compute worker is still running")
        return self.state == DockerRunState.COMPLETED


@dataclasses.dataclass(frozen=True)
class SimilarSample:
    """A neighbour found by :meth:`ApiWorkflowClient.find_similar`: a sample of the run and
    its L2 distance to the query (between L2-normalised embeddings, 0 to 2)."""

    filename: str
    distance: float


class _Reads:
    """The calls that are safe to repeat (GET, downloads), retried through outages, and the
    paged lists.

    Args:
        http: the connection to the server.
        policy: back-off and give-up time of the retries; None = no retries.
        page_size: items asked for per page of a list (1 to :data:`MAX_PAGE_SIZE`).
    """

    def __init__(self, http: HttpApi, policy: RetryPolicy | None, page_size: int) -> None:
        self._http = http
        self._policy = policy
        self._page_size = page_size

    def retrying(self, what: str, fn: Callable[[], T]) -> T:
        """``fn`` retried on connection errors, timeouts and 429/500/502/503/504 answers
        (any other answer is raised at once), or called once without a policy."""
        if self._policy is None:
            return fn()
        return call_with_retry(
            fn,
            policy=self._policy,
            what=what,
            idempotent=True,
            give_up_setting="ApiWorkflowClient retry_give_up_after",
        )

    def get(
        self, path: str, params: Mapping[str, str] | None = None, timeout: float | None = None
    ) -> httpx.Response:
        """One GET, retried through outages."""
        return self.retrying(
            f"GET {path}", lambda: self._http.request("GET", path, params=params, timeout=timeout)
        )

    def get_all(self, path: str, params: Mapping[str, str] | None = None) -> list[Any]:
        """Every item of the paged list at ``path``, in the server's order (oldest first).

        Asks for ``page_size`` items at a time and follows ``Link: <...>; rel="next"`` until
        a page comes without it (a server that does not page answers everything at once).
        The next page is requested at ``path`` with the link's query (offset, limit and the
        filters). An item listed twice, because items were added while the pages were read,
        is kept once; one deleted meanwhile may shift another past a page boundary, unseen.

        Raises:
            ValueError: the server's answer is not a JSON list of objects with an ``id``, or
                its next link does not move forward.
        """
        query: dict[str, str] = {**(params or {}), "limit": str(self._page_size)}
        items: dict[str, Any] = {}
        offset = 0
        while True:
            response = self.get(path, params=query)
            page = response.json()
            if not isinstance(page, list) or not all(
                isinstance(item, dict) and "id" in item for item in page
            ):
                raise ValueError(
                    f"GET {path}: expected a JSON list of objects with an 'id', got "
                    f"{response.text[:200]!r}"
                )
            for item in page:
                items.setdefault(str(item["id"]), item)
            following = response.links.get("next", {}).get("url")
            if not following:
                return list(items.values())
            query = dict(parse_qsl(urlsplit(following).query, keep_blank_values=True))
            next_offset = int(query.get("offset", "0"))
            if next_offset <= offset or not page:
                raise ValueError(
                    f"GET {path}: the next-page link {following!r} does not move past offset "
                    f"{offset}; the server's paging is broken"
                )
            offset = next_offset

    def download(self, path: str, output_path: str | os.PathLike[str], timeout: float) -> Path:
        """Stream ``path`` into ``output_path``, retried through outages (the file is written
        atomically, so a broken attempt leaves nothing behind)."""
        return self.retrying(
            f"download {path}", lambda: self._http.download(path, output_path, timeout)
        )


class _DatasetsApi:
    """lightly's low-level ``client._datasets_api``: raw dataset calls, no client state."""

    def __init__(self, http: HttpApi, reads: _Reads) -> None:
        self._http = http
        self._reads = reads

    def create_dataset(self, body: DatasetCreateRequest) -> DatasetData:
        """Create a dataset; the response has the new ``.id``."""
        response = self._http.request("POST", "/v1/datasets", json=body.model_dump(mode="json"))
        return DatasetData.model_validate(response.json())

    def get_datasets(self) -> list[DatasetData]:
        """Every dataset of the token's user (all pages), oldest first."""
        return [DatasetData.model_validate(d) for d in self._reads.get_all("/v1/datasets")]

    def get_dataset_by_id(self, dataset_id: str) -> DatasetData:
        """One dataset (ApiException 404 if it is not the user's)."""
        response = self._reads.get(f"/v1/datasets/{dataset_id}")
        return DatasetData.model_validate(response.json())

    def delete_dataset_by_id(self, dataset_id: str) -> None:
        """Delete a dataset with its datasources, runs and artifacts."""
        self._http.request("DELETE", f"/v1/datasets/{dataset_id}")


class ApiWorkflowClient:
    """Client of a selfsup server with lightly's ``ApiWorkflowClient`` methods.

    Args:
        token: API token (default ``$SELFSUP_TOKEN``).
        base_url: server location (default ``$SELFSUP_SERVER_LOCATION`` or
            ``http://127.0.0.1:8000``).
        dataset_id: dataset the dataset-level methods act on; when unset, the user's last
            modified dataset is used (with a warning), as lightly does.
        timeout: seconds per request.
        http_client: send through this ``httpx.Client`` (e.g. a FastAPI TestClient).
        page_size: items asked for per request of a list method (1 to 1000, the server's
            largest page); every list method returns all pages.
        retry_give_up_after: seconds for which a read or download (every GET: lists, run
            info, ``compute_worker_run_info_generator``'s polling, artifacts) is retried
            through connection errors, timeouts and 429/500/502/503/504 answers, with
            capped exponential back-off and jitter (0.5 s doubling up to 10 s), each retry
            logged at WARNING by ``selfsup.api.retry``; then the last error is raised as
            ``GaveUpError`` (a ``ConnectionError``). 0 = no retries. Calls that change
            something are never repeated.

    Raises:
        ValueError: ``page_size`` or ``retry_give_up_after`` out of range.
    """

    def __init__(
        self,
        token: str | None = None,
        base_url: str | None = None,
        dataset_id: str | None = None,
        *,
        timeout: float = 30.0,
        http_client: httpx.Client | None = None,
        page_size: int = MAX_PAGE_SIZE,
        retry_give_up_after: float = DEFAULT_RETRY_GIVE_UP_AFTER,
    ) -> None:
        if (
            not isinstance(page_size, int)
            or isinstance(page_size, bool)
            or not 1 <= page_size <= MAX_PAGE_SIZE
        ):
            raise ValueError(f"page_size must be 1 to {MAX_PAGE_SIZE}, got {page_size!r}")
        if not math.isfinite(retry_give_up_after) or retry_give_up_after < 0:
            raise ValueError(
                "retry_give_up_after must be a finite number of seconds >= 0 (0 = no "
                f"retries), got {retry_give_up_after!r}"
            )
        policy = (
            RetryPolicy(
                base=CLIENT_RETRY_BASE, cap=CLIENT_RETRY_CAP, give_up_after=retry_give_up_after
            )
            if retry_give_up_after
            else None
        )
        self._http = HttpApi(token, base_url, timeout=timeout, http_client=http_client)
        self._reads = _Reads(self._http, policy, page_size)
        self._datasets_api = _DatasetsApi(self._http, self._reads)
        self._dataset_id = dataset_id

    def __repr__(self) -> str:
        return (
            f"ApiWorkflowClient(base_url={self._http.base_url!r}, dataset_id={self._dataset_id!r})"
        )

    def close(self) -> None:
        """Close the HTTP connections."""
        self._http.close()

    def __enter__(self) -> ApiWorkflowClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ----------------------------------------------------------------- datasets
    @property
    def dataset_id(self) -> str:
        """The current dataset; if none was set, the user's last modified one (with a warning)."""
        if self._dataset_id is None:
            datasets = self._datasets_api.get_datasets()
            if not datasets:
                raise ValueError(
                    "no dataset_id set and you have no datasets: call create_dataset(name) "
                    "or pass dataset_id=... to ApiWorkflowClient"
                )
            last = max(datasets, key=lambda d: (d.last_modified_at, d.created_at))
            warnings.warn(
                f"Dataset has not been specified, taking the last modified dataset "
                f"{last.name!r} ({last.id}) as default dataset.",
                UserWarning,
                stacklevel=2,
            )
            self._dataset_id = last.id
        return self._dataset_id

    @dataset_id.setter
    def dataset_id(self, dataset_id: str) -> None:
        self._dataset_id = dataset_id

    def create_dataset(
        self, dataset_name: str, dataset_type: DatasetType | str = DatasetType.IMAGES
    ) -> str:
        """Create a dataset, make it the current one and return its id.

        Raises:
            ValueError: you already have a dataset with this name.
        """
        request = DatasetCreateRequest(name=dataset_name, type=DatasetType(dataset_type))
        try:
            dataset = self._datasets_api.create_dataset(request)
        except ApiException as exc:
            if exc.status == 409:
                raise ValueError(
                    f"A dataset with the name {dataset_name!r} already exists; choose another "
                    "name or set client.dataset_id to the existing one"
                ) from None
            raise
        self._dataset_id = dataset.id
        return dataset.id

    def get_datasets(self) -> list[DatasetData]:
        """Every dataset of the user (all pages), oldest first."""
        return self._datasets_api.get_datasets()

    def get_dataset_by_id(self, dataset_id: str) -> DatasetData:
        """One dataset of the user."""
        return self._datasets_api.get_dataset_by_id(dataset_id)

    def delete_dataset_by_id(self, dataset_id: str) -> None:
        """Delete a dataset (and its datasources, runs and artifacts)."""
        self._datasets_api.delete_dataset_by_id(dataset_id)
        if self._dataset_id == dataset_id:
            self._dataset_id = None

    # -------------------------------------------------------------- datasources
    def _set_datasource(self, config: Any) -> list[DatasourceData]:
        response = self._http.request(
            "POST",
            f"/v1/datasets/{self.dataset_id}/datasources",
            json=config.model_dump(mode="json"),
        )
        return [DatasourceData.model_validate(d) for d in response.json()]

    def set_local_config(
        self,
        resource_path: str,
        thumbnail_suffix: str | None = DEFAULT_THUMBNAIL_SUFFIX,
        purpose: DatasourcePurpose | str = DatasourcePurpose.INPUT_OUTPUT,
    ) -> None:
        """Use a folder as datasource; it must be inside one of the server's local roots."""
        self._set_datasource(
            DatasourceConfigLOCAL(
                full_path=os.fspath(resource_path),
                thumb_suffix=thumbnail_suffix,
                purpose=DatasourcePurpose(purpose),
            )
        )

    def set_s3_config(
        self,
        resource_path: str,
        region: str,
        access_key: str,
        secret_access_key: str,
        thumbnail_suffix: str | None = DEFAULT_THUMBNAIL_SUFFIX,
        purpose: DatasourcePurpose | str = DatasourcePurpose.INPUT_OUTPUT,
    ) -> None:
        """Use an S3 prefix (``s3://bucket/path/``) as datasource; the keys go to workers only."""
        self._set_datasource(
            DatasourceConfigS3(
                full_path=resource_path,
                s3_region=region,
                s3_access_key_id=access_key,
                s3_secret_access_key=secret_access_key,
                thumb_suffix=thumbnail_suffix,
                purpose=DatasourcePurpose(purpose),
            )
        )

    def set_gcs_config(
        self,
        resource_path: str,
        project_id: str,
        credentials: str,
        thumbnail_suffix: str | None = DEFAULT_THUMBNAIL_SUFFIX,
        purpose: DatasourcePurpose | str = DatasourcePurpose.INPUT_OUTPUT,
    ) -> None:
        """Use a GCS prefix (``gs://bucket/path/``) as datasource; ``credentials`` is the
        service-account key JSON text, handed to workers only."""
        self._set_datasource(
            DatasourceConfigGCS(
                full_path=resource_path,
                gcs_project_id=project_id,
                gcs_credentials=credentials,
                thumb_suffix=thumbnail_suffix,
                purpose=DatasourcePurpose(purpose),
            )
        )

    def set_azure_config(
        self,
        container_name: str,
        account_name: str,
        sas_token: str,
        thumbnail_suffix: str | None = DEFAULT_THUMBNAIL_SUFFIX,
        purpose: DatasourcePurpose | str = DatasourcePurpose.INPUT_OUTPUT,
    ) -> None:
        """Use an Azure container (``container/path/``) as datasource; the SAS token goes to
        workers only."""
        self._set_datasource(
            DatasourceConfigAzure(
                full_path=container_name,
                account_name=account_name,
                account_key=sas_token,
                thumb_suffix=thumbnail_suffix,
                purpose=DatasourcePurpose(purpose),
            )
        )

    def get_datasources(self) -> list[DatasourceData]:
        """The current dataset's datasources (never with credentials)."""
        response = self._reads.get(f"/v1/datasets/{self.dataset_id}/datasources")
        return [DatasourceData.model_validate(d) for d in response.json()]

    # ------------------------------------------------------------------ workers
    def register_compute_worker(
        self, name: str = "Default", labels: Sequence[str] | None = None
    ) -> str:
        """Register a worker (again: same id, labels updated) and return its id."""
        body = CreateDockerWorkerRegistryEntryRequest(name=name, labels=list(labels or []))
        response = self._http.request("POST", "/v1/workers", json=body.model_dump(mode="json"))
        return DockerWorkerRegistryEntryData.model_validate(response.json()).id

    def get_compute_workers(self) -> list[DockerWorkerRegistryEntryData]:
        """All registered workers of the user (all pages), oldest first."""
        workers = self._reads.get_all("/v1/workers")
        return [DockerWorkerRegistryEntryData.model_validate(w) for w in workers]

    def get_compute_worker_ids(self) -> list[str]:
        """Ids of all registered workers of the user."""
        return [w.id for w in self.get_compute_workers()]

    def delete_compute_worker(self, worker_id: str) -> None:
        """Remove a registered worker."""
        self._http.request("DELETE", f"/v1/workers/{worker_id}")

    # ----------------------------------------------------------- scheduled runs
    def schedule_compute_worker_run(
        self,
        worker_config: Mapping[str, Any] | None = None,
        lightly_config: Mapping[str, Any] | None = None,
        selection_config: Mapping[str, Any] | None = None,
        priority: DockerRunScheduledPriority | str = DockerRunScheduledPriority.MID,
        runs_on: Sequence[str] | None = None,
        *,
        selfsup_config: Mapping[str, Any] | None = None,
    ) -> str:
        """Schedule a run of the current dataset and return the scheduled run's id.

        The configs are validated here first, with the same messages as ``selfsup run``
        (``unknown config key 'stoping_condition'; did you mean 'stopping_condition'?``).

        Args:
            worker_config: keys of ``selfsup run`` (``stopping_condition``, ``method``, ...).
            lightly_config: training/embedding sections (``loader``, ``model``, ``trainer``...);
                ``selfsup_config`` is the same argument under selfsup's name (give one).
            selection_config: selection strategies (lightly Worker ``selection_config`` dict).
            priority: LOW, MID (default), HIGH or CRITICAL.
            runs_on: labels a worker must all have to pick the run up.

        Raises:
            ConfigError: a config key or value is invalid.
        """
        from selfsup.config.run_configs import validate_run_configs

        if selfsup_config is not None:
            if lightly_config is not None:
                raise ValueError("give lightly_config or selfsup_config, not both (same thing)")
            lightly_config = selfsup_config
        validate_run_configs(worker_config, lightly_config, selection_config, check_selection=True)
        body = DockerRunScheduledCreateRequest(
            worker_config=dict(worker_config) if worker_config is not None else None,
            lightly_config=dict(lightly_config) if lightly_config is not None else None,
            selection_config=dict(selection_config) if selection_config is not None else None,
            priority=DockerRunScheduledPriority(priority),
            runs_on=list(runs_on or []),
        )
        response = self._http.request(
            "POST",
            f"/v1/datasets/{self.dataset_id}/scheduled-runs",
            json=body.model_dump(mode="json"),
        )
        return DockerRunScheduledData.model_validate(response.json()).id

    def get_scheduled_compute_worker_runs(
        self, state: DockerRunScheduledState | str | None = None
    ) -> list[DockerRunScheduledData]:
        """Scheduled runs of the current dataset (all pages, oldest first), optionally only
        those in ``state``."""
        params = {"dataset_id": self.dataset_id}
        if state is not None:
            params["state"] = DockerRunScheduledState(state).value
        scheduled = self._reads.get_all("/v1/scheduled-runs", params)
        return [DockerRunScheduledData.model_validate(s) for s in scheduled]

    def get_scheduled_compute_worker_run(self, scheduled_run_id: str) -> DockerRunScheduledData:
        """One scheduled run by id."""
        response = self._reads.get(f"/v1/scheduled-runs/{scheduled_run_id}")
        return DockerRunScheduledData.model_validate(response.json())

    def cancel_scheduled_compute_worker_run(self, scheduled_run_id: str) -> None:
        """Withdraw a waiting run, or ask the worker running it to abort."""
        self._http.request("POST", f"/v1/scheduled-runs/{scheduled_run_id}/cancel")

    # --------------------------------------------------------------------- runs
    def get_compute_worker_runs(self, dataset_id: str | None = None) -> list[DockerRunData]:
        """All runs of the user, or of one dataset (all pages), oldest first."""
        params = {"dataset_id": dataset_id} if dataset_id is not None else None
        return [DockerRunData.model_validate(r) for r in self._reads.get_all("/v1/runs", params)]

    def get_compute_worker_run(self, run_id: str) -> DockerRunData:
        """One run by id."""
        response = self._reads.get(f"/v1/runs/{run_id}")
        return DockerRunData.model_validate(response.json())

    def get_compute_worker_run_from_scheduled_run(self, scheduled_run_id: str) -> DockerRunData:
        """The latest run of a scheduled run (ApiException 404 before a worker claimed it)."""
        response = self._reads.get(f"/v1/scheduled-runs/{scheduled_run_id}/run")
        return DockerRunData.model_validate(response.json())

    def get_compute_worker_run_info(self, scheduled_run_id: str) -> ComputeWorkerRunInfo:
        """State and message of a scheduled run's latest attempt, or why there is none."""
        try:
            scheduled = self.get_scheduled_compute_worker_run(scheduled_run_id)
        except ApiException as exc:
            if exc.status != 404:
                raise
            return ComputeWorkerRunInfo(
                STATE_SCHEDULED_ID_NOT_FOUND,
                f"Could not find a job for the given run_id: {scheduled_run_id!r}.",
            )
        try:
            run = self.get_compute_worker_run_from_scheduled_run(scheduled_run_id)
        except ApiException as exc:
            if exc.status != 404:
                raise
            run = None
        if run is None:
            if scheduled.state == DockerRunScheduledState.CANCELED:
                return ComputeWorkerRunInfo(
                    STATE_SCHEDULED_ID_NOT_FOUND,
                    f"The job {scheduled_run_id!r} was canceled before a worker picked it up.",
                )
            return ComputeWorkerRunInfo(
                DockerRunScheduledState.OPEN.value,
                "Waiting for pickup by a selfsup worker. Make sure to start a worker "
                "connected to your user token (and with the labels in runs_on) to process "
                "the job.",
            )
        if run.state == DockerRunState.CRASHED and scheduled.state == DockerRunScheduledState.OPEN:
            return ComputeWorkerRunInfo(
                DockerRunScheduledState.OPEN.value,
                f"Attempt {run.attempt} of {scheduled.max_attempts} crashed ({run.message}); "
                "waiting for a worker to retry.",
            )
        return ComputeWorkerRunInfo(run.state.value, run.message)

    def compute_worker_run_info_generator(
        self, scheduled_run_id: str, poll_interval: float = 30.0
    ) -> Iterator[ComputeWorkerRunInfo]:
        """Yield the run info each time it changes, until the job ends.

        Each poll is retried through server restarts and network cuts for up to the client's
        ``retry_give_up_after`` seconds.

        Args:
            scheduled_run_id: id returned by :meth:`schedule_compute_worker_run`.
            poll_interval: seconds between polls.
        """
        last: ComputeWorkerRunInfo | None = None
        while True:
            info = self.get_compute_worker_run_info(scheduled_run_id)
            if info != last:
                yield info
            if info.in_end_state():
                return
            last = info
            time.sleep(poll_interval)

    # ---------------------------------------------------------------- artifacts
    def _artifact(
        self, run: DockerRunData, artifact_type: DockerRunArtifactType
    ) -> DockerRunArtifactData:
        for artifact in run.artifacts:
            if artifact.type == artifact_type:
                return artifact
        raise ArtifactNotExist(
            f"run {run.id!r} has no {artifact_type.value} artifact "
            f"(it has: {', '.join(a.type.value for a in run.artifacts) or 'none'}); "
            "fetch the run again with get_compute_worker_run if it is still running"
        )

    def _download_by_type(
        self,
        run: DockerRunData,
        artifact_type: DockerRunArtifactType,
        output_path: str | os.PathLike[str],
        timeout: float,
    ) -> None:
        artifact = self._artifact(run, artifact_type)
        self._reads.download(f"/v1/runs/{run.id}/artifacts/{artifact.id}", output_path, timeout)

    def download_compute_worker_run_artifacts(
        self, run: DockerRunData, output_dir: str | os.PathLike[str], timeout: float = 60
    ) -> None:
        """Download every artifact of ``run`` into ``output_dir`` under its file name."""
        root = Path(output_dir).resolve()
        for artifact in run.artifacts:
            target = (root / artifact.file_name).resolve()
            if not target.is_relative_to(root):  # never trust a name to stay inside
                raise ValueError(f"artifact name {artifact.file_name!r} leaves {str(root)!r}")
            self._reads.download(f"/v1/runs/{run.id}/artifacts/{artifact.id}", target, timeout)

    def download_compute_worker_run_checkpoint(
        self, run: DockerRunData, output_path: str | os.PathLike[str], timeout: float = 60
    ) -> None:
        """Download the last training checkpoint (ArtifactNotExist if there is none)."""
        self._download_by_type(run, DockerRunArtifactType.CHECKPOINT, output_path, timeout)

    def download_compute_worker_run_report_pdf(
        self, run: DockerRunData, output_path: str | os.PathLike[str], timeout: float = 60
    ) -> None:
        """Download the PDF report."""
        self._download_by_type(run, DockerRunArtifactType.REPORT_PDF, output_path, timeout)

    def download_compute_worker_run_report_json(
        self, run: DockerRunData, output_path: str | os.PathLike[str], timeout: float = 60
    ) -> None:
        """Download the report as JSON."""
        self._download_by_type(run, DockerRunArtifactType.REPORT_JSON, output_path, timeout)

    def download_compute_worker_run_log(
        self, run: DockerRunData, output_path: str | os.PathLike[str], timeout: float = 60
    ) -> None:
        """Download the run's log."""
        self._download_by_type(run, DockerRunArtifactType.LOG, output_path, timeout)

    def download_compute_worker_run_memory_log(
        self, run: DockerRunData, output_path: str | os.PathLike[str], timeout: float = 60
    ) -> None:
        """Download the memory-use log."""
        self._download_by_type(run, DockerRunArtifactType.MEMLOG, output_path, timeout)

    def download_compute_worker_run_corruptness_check_information(
        self, run: DockerRunData, output_path: str | os.PathLike[str], timeout: float = 60
    ) -> None:
        """Download the corruptness check's JSON (corrupt files and why)."""
        self._download_by_type(
            run, DockerRunArtifactType.CORRUPTNESS_CHECK_INFORMATION, output_path, timeout
        )

    def download_compute_worker_run_sequence_information(
        self, run: DockerRunData, output_path: str | os.PathLike[str], timeout: float = 60
    ) -> None:
        """Download the selected video sequences' JSON."""
        self._download_by_type(
            run, DockerRunArtifactType.SEQUENCE_INFORMATION, output_path, timeout
        )

    def download_compute_worker_run_selected_filenames(
        self, run: DockerRunData, output_path: str | os.PathLike[str], timeout: float = 60
    ) -> None:
        """Download the list of selected file names (one per line)."""
        self._download_by_type(run, DockerRunArtifactType.SELECTED_FILENAMES, output_path, timeout)

    def get_compute_worker_run_selected_filenames(
        self, run: DockerRunData, timeout: float = 60
    ) -> list[str]:
        """The selected file names of a run, in the order the worker wrote them."""
        artifact = self._artifact(run, DockerRunArtifactType.SELECTED_FILENAMES)
        response = self._reads.get(f"/v1/runs/{run.id}/artifacts/{artifact.id}", timeout=timeout)
        return [line for line in response.text.splitlines() if line.strip()]

    def find_similar(
        self,
        run_id: str,
        filename: str | None = None,
        embedding: Sequence[float] | None = None,
        k: int = 10,
        image: str | os.PathLike[str] | bytes | None = None,
    ) -> list[SimilarSample]:
        """The ``k`` samples of a completed run nearest to one of its samples (``filename``,
        itself left out), to an ``embedding`` vector, or to an ``image`` (a path or the file's
        bytes) that the server embeds with the run's own model, nearest first.

        Searches the run's embeddings on the server (``POST /v1/runs/{run_id}/similar``; an
        image travels base64-encoded in the JSON body, so the server's request body limit,
        ``--max-body-bytes``, 1 MiB by default, bounds it to about 750 kB).

        Raises:
            ValueError: not exactly one of ``filename``, ``embedding`` and ``image``, or
                ``k < 1``.
            OSError: the ``image`` file cannot be read.
            ApiException: 404 unknown run or sample, 409 the run has no embeddings yet (or
                no model that can embed an image on the server, ``EMBEDDER_UNAVAILABLE``),
                400 a vector of another dimension than the run's embeddings or an image
                that is no accepted image (``BAD_IMAGE``, naming the accepted formats), 413
                an image over the body limit.
        """
        given = [v for v in (filename, embedding, image) if v is not None]
        if len(given) != 1:
            raise ValueError("find_similar: give exactly one of filename, embedding and image")
        if k < 1:
            raise ValueError(f"find_similar: k must be at least 1, got {k}")
        body: dict[str, Any] = {"k": k}
        if filename is not None:
            body["filename"] = filename
        elif embedding is not None:
            body["embedding"] = [float(v) for v in embedding]
        else:
            data = image if isinstance(image, bytes) else Path(os.fspath(image or "")).read_bytes()
            body["image"] = base64.b64encode(data).decode("ascii")
        # A search changes nothing on the server, so it is retried like a read.
        response = self._reads.retrying(
            f"POST /v1/runs/{run_id}/similar",
            lambda: self._http.request("POST", f"/v1/runs/{run_id}/similar", json=body),
        )
        return [
            SimilarSample(filename=str(r["filename"]), distance=float(r["distance"]))
            for r in response.json()["results"]
        ]

    def get_compute_worker_run_checkpoint_url(self, run: DockerRunData) -> str:
        """URL of the checkpoint (needs the ``Authorization: Bearer`` token header)."""
        artifact = self._artifact(run, DockerRunArtifactType.CHECKPOINT)
        return f"{self._http.base_url}/v1/runs/{run.id}/artifacts/{artifact.id}"
