"""Where independent tasks run: in this process (``local``) or as Ray tasks (``ray``).

:func:`map_tasks` applies a module-level function to each item and returns the results in input order,
whichever executor ran them. Users: ``rank_models`` (a task per model), ``zoo.build.build_zoo`` (per recipe),
``zoo.evaluate.evaluate_zoo`` (per model × target) and ``zoo.bench.run_bench`` (per target).

``local`` runs the items one after another in this process (the default; nothing to install).

``ray`` runs one Ray task (1 CPU each) per item. GPUs: when the run's device (``--device``, i.e.
``TRANSFERLENS_DEVICE``; ``auto`` counts) is CUDA and the Ray runtime has GPUs, each task also reserves
``num_gpus=1`` (:func:`task_gpus`), so Ray places one task per GPU, sets the task's ``CUDA_VISIBLE_DEVICES``
to its GPU, and the task runs on ``cuda`` (its only visible device); with ``--device cpu``, or a runtime
without GPUs, tasks reserve none and run on the CPU. Ray is imported only then (``pip install ray``, or
``pip install 'transferlens[ray]'``). Without a running Ray runtime in this process, ``ray.init`` is called:

- no ``address``: Ray connects to a cluster named by ``RAY_ADDRESS`` if set, else starts a local runtime
  on this machine (``num_cpus`` CPUs, default all); it is shut down when the process exits;
- ``address="auto"``: join the cluster already running on this node (``ray start --head`` beforehand);
- ``address="ray://host:10001"``: a remote cluster through the Ray Client (the head node's client port).

e.g. ``transferlens rank ... --executor ray --address ray://head:10001``. The functions and their
arguments travel by pickle, so the workers need the same ``transferlens`` (and dependencies) installed.

The feature cache: each task reads and writes ``$TRANSFERLENS_HOME`` (default ``~/.cache/transferlens``)
on the node it runs on. The driver's ``TRANSFERLENS_*`` variables (and ``HF_HOME``, ``HF_HUB_OFFLINE``,
``TORCH_HOME``) are passed to every task through ``runtime_env={"env_vars": ...}``, so on one machine, or
on nodes that mount ``$TRANSFERLENS_HOME`` at the same path from a shared filesystem, every task uses the
same cache (entries are written atomically and content-addressed, so concurrent writers are safe). With
no shared filesystem, each node computes and caches its own features; results are the same, only the
cache is not shared. The ``zoo/`` and ``data/`` folders of ``$TRANSFERLENS_HOME`` must be present on
every node too (the data sources and built zoo models are read there).

Failures: an exception raised by ``fn`` is handed to ``on_error(item, exc)`` when given (its return
value stands in for that item's result, and the other items go on), else re-raised (by ``ray`` once the
other tasks have finished). The exception is the original one for both executors (for Ray, the cause of the
``RayTaskError``). A task that dies without raising (its worker crashed or was killed, its node was lost)
becomes a :class:`TaskFailed`, a :class:`~transferlens.errors.TransferLensError`.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any, Callable, Iterable, TypeVar

from .errors import TransferLensError, UsageError

log = logging.getLogger("transferlens")

EXECUTORS = ("local", "ray")
PASSED_ENV = ("HF_HOME", "HF_HUB_OFFLINE", "TORCH_HOME")  # besides every TRANSFERLENS_* variable

T = TypeVar("T")
R = TypeVar("R")


class TaskFailed(TransferLensError):
    """A task could not finish for a reason outside its function: its worker or node died, or it was cancelled."""


def check_executor(executor: str, address: str | None = None) -> str:
    """Validate an executor name (and that ``address`` only goes with ``ray``); returns the name."""
    if executor not in EXECUTORS:
        raise UsageError(f"unknown executor {executor!r}; choose one of: {', '.join(EXECUTORS)}.")
    if address is not None and executor != "ray":
        raise UsageError(f"--address {address} needs --executor ray (the {executor} executor runs in this process).")
    return executor


def worker_env() -> dict[str, str]:
    """The environment variables every Ray task gets: ``TRANSFERLENS_*`` (the cache home first) and a few hub settings."""
    return {k: v for k, v in sorted(os.environ.items()) if k.startswith("TRANSFERLENS_") or k in PASSED_ENV}


def map_tasks(fn: Callable[..., R], items: Iterable[T], *, executor: str = "local", address: str | None = None,
              num_cpus: int | None = None, kwargs: dict[str, Any] | None = None,
              on_error: Callable[[T, BaseException], R] | None = None, progress: bool = False,
              label: Callable[[T], str] = str) -> list[R]:
    """``[fn(item, **kwargs) for item in items]`` on ``executor``, results in input order.

    For ``ray``, ``fn`` (best a module-level function), ``kwargs``' values and the results must be
    picklable (cloudpickle); ``fn`` and ``kwargs`` are stored once in the object store for all the tasks. ``num_cpus`` sizes a local Ray runtime started here (ignored when connecting to a cluster).
    ``progress`` logs one line per finished item (named by ``label(item)``).
    """
    check_executor(executor, address)
    items = list(items)
    kwargs = dict(kwargs or {})
    if executor == "local":
        return _map_local(fn, items, kwargs, on_error, progress, label)
    return _map_ray(fn, items, kwargs, on_error, progress, label, address=address, num_cpus=num_cpus)


def _map_local(fn, items, kwargs, on_error, progress, label) -> list:
    out = []
    for i, item in enumerate(items):
        try:
            out.append(fn(item, **kwargs))
        except Exception as exc:
            if on_error is None:
                raise
            out.append(on_error(item, exc))
        if progress:
            log.info("%d/%d done: %s", i + 1, len(items), label(item))
    return out


def import_ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise UsageError(f"the ray executor needs Ray: pip install ray (or pip install 'transferlens[ray]'); import failed: {exc}") from None
    return ray


def init_ray(address: str | None = None, num_cpus: int | None = None) -> Any:
    """The ``ray`` module, with a runtime initialised (started locally, or connected to ``address``)."""
    ray = import_ray()
    if not ray.is_initialized():
        t0 = time.perf_counter()
        opts: dict[str, Any] = {"include_dashboard": False, "ignore_reinit_error": True, "log_to_driver": False,
                                "runtime_env": {"env_vars": worker_env()}}
        if address is None and num_cpus is not None:
            opts["num_cpus"] = int(num_cpus)  # only for a runtime started here; Ray refuses it for a cluster
        try:
            ray.init(address=address, **opts)
        except (ConnectionError, ValueError, RuntimeError) as exc:
            where = f"the Ray cluster at {address}" if address else "a local Ray runtime"
            raise UsageError(f"could not start or reach {where}: {exc}") from None
        log.debug("ray.init(address=%r) took %.1f s", address, time.perf_counter() - t0)
    return ray


def _call(fn: Callable[..., Any], item: Any, kwargs: dict[str, Any]) -> Any:
    """The body of every Ray task (a plain function, so ``fn`` may be a builtin or a C function too)."""
    return fn(item, **kwargs)


def task_gpus(cluster_gpus: float, device: str | None = None) -> int:
    """GPUs each Ray task reserves: 1 when ``device`` (default ``$TRANSFERLENS_DEVICE``, unset = ``auto``) may be
    CUDA and the runtime has at least one GPU, else 0."""
    spec = (os.environ.get("TRANSFERLENS_DEVICE", "auto") if device is None else device).strip().lower() or "auto"
    return 1 if cluster_gpus >= 1 and (spec == "auto" or spec.startswith("cuda")) else 0


def _map_ray(fn, items, kwargs, on_error, progress, label, *, address, num_cpus) -> list:
    ray = init_ray(address, num_cpus)
    from ray.exceptions import RayError, RayTaskError

    env = worker_env()
    gpus = task_gpus(float(ray.cluster_resources().get("GPU", 0)))
    if gpus:
        env["TRANSFERLENS_DEVICE"] = "cuda"  # the task sees only its own GPU (Ray sets CUDA_VISIBLE_DEVICES)

    # The env vars also go on every task: the runtime may have been initialised elsewhere (a caller's
    # ray.init) without them. Per-task runtime_env merges with the job's. No retries: a task that
    # died once is reported, not run again (a crash is usually deterministic for a given model).
    remote = ray.remote(num_cpus=1, num_gpus=gpus, max_retries=0)(_call).options(runtime_env={"env_vars": env})
    fn_ref, kw_ref = ray.put(fn), ray.put(kwargs)  # stored once, shared by the tasks
    refs = [remote.remote(fn_ref, item, kw_ref) for item in items]
    index = {ref: i for i, ref in enumerate(refs)}
    out: list[Any] = [None] * len(items)
    first_error: BaseException | None = None
    pending = list(refs)
    done_count = 0
    while pending:
        ready, pending = ray.wait(pending, num_returns=1)
        ref = ready[0]
        i = index[ref]
        try:
            out[i] = ray.get(ref)
        except RayTaskError as exc:  # fn raised: hand on the original exception
            cause = exc.cause if isinstance(getattr(exc, "cause", None), BaseException) else exc
            if on_error is None:
                first_error = first_error or cause
            else:
                out[i] = on_error(items[i], cause)
        except RayError as exc:  # the task died (worker crash, node lost, cancelled)
            failed = TaskFailed(f"ray task for {label(items[i])} failed: {type(exc).__name__}: {exc}")
            if on_error is None:
                first_error = first_error or failed
            else:
                out[i] = on_error(items[i], failed)
        done_count += 1
        if progress:
            log.info("%d/%d done: %s", done_count, len(items), label(items[i]))
    if first_error is not None:
        raise first_error
    return out
