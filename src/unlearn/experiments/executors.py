"""Executors: where the job functions of `unlearn.experiments.jobs` run.

Both executors take a job function and a list of keyword-argument dicts and yield
`(index, result_or_exception)` as jobs finish, so the driver stores each result the moment it
exists (an interrupted bench loses at most the jobs in flight).
- `LocalExecutor`: in this process, one job after another. No Ray needed.
- `RayExecutor`: each job is a Ray task (`ray.init(address=...)`, or a local instance when no
  address is given); with a CUDA device each task asks Ray for one GPU. Large arguments shared by
  many jobs (model weights) are put into the object store once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from unlearn.errors import UnlearnInputError


class LocalExecutor:
    name = "local"

    def map(self, fn: Callable, jobs: list[dict[str, Any]]) -> Iterator[tuple[int, Any]]:
        for index, kwargs in enumerate(jobs):
            try:
                yield index, fn(**kwargs)
            except KeyboardInterrupt:
                raise
            except Exception as err:  # noqa: BLE001  reported by the driver, the bench goes on
                yield index, err

    def share(self, value: Any) -> Any:
        return value

    def close(self) -> None:
        pass


class RayExecutor:
    name = "ray"

    def __init__(self, address: str | None = None, num_cpus: int | None = None, device: str = "cpu"):
        try:
            import ray
        except ImportError as err:
            raise UnlearnInputError('--backend ray needs Ray: pip install "unlearn[ray]"') from err
        self.ray = ray
        self.started = not ray.is_initialized()
        if self.started:
            kwargs = {"address": address} if address else {"num_cpus": num_cpus}
            ray.init(include_dashboard=False, log_to_driver=False, **kwargs)
        wants_gpu = device.startswith("cuda")
        if wants_gpu and not ray.cluster_resources().get("GPU", 0):
            self.close()
            raise UnlearnInputError(f"device {device}: the Ray cluster has no GPU")
        self.options = {"num_cpus": 1, "num_gpus": 1 if wants_gpu else 0}

    def share(self, value: Any) -> Any:
        return self.ray.put(value)

    def map(self, fn: Callable, jobs: list[dict[str, Any]]) -> Iterator[tuple[int, Any]]:
        remote = self.ray.remote(**self.options)(fn)
        pending = {remote.remote(**kwargs): index for index, kwargs in enumerate(jobs)}
        while pending:
            done, _ = self.ray.wait(list(pending), num_returns=1)
            for ref in done:
                index = pending.pop(ref)
                try:
                    yield index, self.ray.get(ref)
                except self.ray.exceptions.RayTaskError as err:
                    yield index, err.as_instanceof_cause()

    def close(self) -> None:
        if self.started:
            self.ray.shutdown()


def make_executor(backend: str, address: str | None = None, device: str = "cpu") -> LocalExecutor | RayExecutor:
    if backend == "local":
        if address:
            raise UnlearnInputError("--address is for --backend ray")
        return LocalExecutor()
    if backend == "ray":
        return RayExecutor(address, device=device)
    raise UnlearnInputError(f"unknown backend {backend!r}; use local or ray")
