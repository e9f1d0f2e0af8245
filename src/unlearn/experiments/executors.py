"""Executors: where the job functions of `unlearn.experiments.jobs` run.

Every executor takes a job function and a list of keyword-argument dicts and yields
`(index, result_or_exception)` as jobs finish, so the driver stores each result the moment it
exists (an interrupted bench loses at most the jobs in flight).
- `LocalExecutor`: in this process, one job after another. No Ray needed.
- `ProcessExecutor`: in `workers` processes of this machine, one torch thread each, jobs handed
  out in the order given as workers come free. Small models gain little from a second torch
  thread and much from a second process (the LM demo on 2 cores: two models train at once).
- `RayExecutor`: each job is a Ray task (`ray.init(address=...)`, or a local instance when no
  address is given); with a CUDA device each task asks Ray for one GPU. Large arguments shared by
  many jobs (model weights) are put into the object store once.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from typing import Any

from unlearn.errors import UnlearnInputError


def timed_call(fn: Callable, kwargs: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """`fn(**kwargs)` (or the exception it raised) and when and where it ran: the worker's pid,
    wall-clock start and end (comparable across processes of one machine) and the CPU seconds the
    worker spent on it (`time.process_time`: every thread of the process)."""
    start, cpu = time.time(), time.process_time()
    try:
        out = fn(**kwargs)
    except KeyboardInterrupt:
        raise
    except Exception as err:  # noqa: BLE001  reported by the driver, the bench goes on
        out = err
    job = kwargs.get("job")
    label = getattr(job, "method", None) or kwargs.get("name") or fn.__name__
    return out, {"job": label, "fn": fn.__name__, "pid": os.getpid(), "start": start, "end": time.time(),
                 "cpu_s": time.process_time() - cpu}


class LocalExecutor:
    """Jobs in this process, one after another; `timings` logs each (`timed_call`)."""

    name = "local"

    def __init__(self):
        self.timings: list[dict[str, Any]] = []

    def map(self, fn: Callable, jobs: list[dict[str, Any]]) -> Iterator[tuple[int, Any]]:
        for index, kwargs in enumerate(jobs):
            out, timing = timed_call(fn, kwargs)
            self.timings.append(timing)
            yield index, out

    def share(self, value: Any) -> Any:
        return value

    def close(self) -> None:
        pass


def _one_torch_thread() -> None:
    import torch

    torch.set_num_threads(1)


class ProcessExecutor:
    """Jobs in a pool of `workers` processes started fresh (`spawn`: no copy of this process's
    torch threads or CUDA state), each with one torch thread; `timings` logs each job.

    A job's arguments and result are pickled, as for Ray: the job functions take specs, ids and
    bank paths, never live objects. A worker that dies (killed, out of memory) fails the jobs it
    held and those still queued, each recorded as crashed by the driver. Spawned workers import
    the main module, so a script that runs a bench this way guards its entry point with
    `if __name__ == "__main__":` (the `unlearn` command and the benchmarks/ scripts do).
    """

    name = "processes"

    def __init__(self, workers: int):
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        if workers < 1:
            raise UnlearnInputError(f"--workers {workers}: give at least 1")
        self.workers = workers
        self.pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                                        initializer=_one_torch_thread)
        self.timings: list[dict[str, Any]] = []

    def map(self, fn: Callable, jobs: list[dict[str, Any]]) -> Iterator[tuple[int, Any]]:
        from concurrent.futures import as_completed

        futures = {self.pool.submit(timed_call, fn, kwargs): index for index, kwargs in enumerate(jobs)}
        try:
            for future in as_completed(futures):
                error = future.exception()
                if error is not None:  # the worker itself failed (a job's own exception comes back as its result)
                    yield futures[future], error
                    continue
                out, timing = future.result()
                self.timings.append(timing)
                yield futures[future], out
        finally:
            for future in futures:
                future.cancel()

    def share(self, value: Any) -> Any:
        return value

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity where the platform says, else the count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


class RayExecutor:
    name = "ray"
    timings: list[dict[str, Any]] = []  # Ray's own dashboard shows where tasks ran

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


def make_executor(backend: str, address: str | None = None, device: str = "cpu",
                  workers: int | None = None) -> LocalExecutor | ProcessExecutor | RayExecutor:
    """`local` (this process), `processes` (`workers` processes, default one per usable core) or `ray`."""
    if address and backend != "ray":
        raise UnlearnInputError("--address is for --backend ray")
    if workers is not None and backend != "processes":
        raise UnlearnInputError("--workers is for --backend processes")
    if backend == "local":
        return LocalExecutor()
    if backend == "processes":
        return ProcessExecutor(workers or usable_cores())
    if backend == "ray":
        return RayExecutor(address, device=device)
    raise UnlearnInputError(f"unknown backend {backend!r}; use local, processes or ray")
