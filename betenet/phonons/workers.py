"""Tasks over worker processes that each load the potential once: :func:`run_tasks`.

``jobs`` processes are started with the ``spawn`` method (a fresh interpreter: no copy of the parent's
torch or OpenMP state); each runs ``initializer(*initargs)`` once (e.g. loading the potential) with
``threads`` torch / BLAS / OpenMP threads (default 1: ``jobs`` processes on ``jobs`` cores), then
takes tasks one after another. At most ``jobs`` tasks are handed out at a time, so that when a worker
dies (killed, out of memory) only the tasks then running are suspects: they are run again one at a
time, and the one that kills its worker alone is reported (``on_crash``) while the others go on.
Workers ignore Ctrl-C; the parent stops them when it is interrupted, and whatever they finished has been
reported. A task's own errors are the task function's to catch and report; an exception that escapes
it (e.g. a missing optional package) stops the run and is raised in the parent. The initializer must not
raise (a pool whose initializer fails is broken for every task): keep its error and raise it from the
task function instead.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
from collections import deque
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Callable

#: Start method of the workers.
START_METHOD = "spawn"
#: Thread-count variables set for the workers (read by OpenMP, MKL and OpenBLAS when they load).
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
#: The reason given for a task whose worker died while it ran alone.
CRASH_REASON = "its worker process died while computing it (killed, e.g. out of memory)"


def _init_worker(threads: int, initializer, initargs) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and stops the workers
    import warnings

    warnings.filterwarnings("ignore", category=UserWarning, module=r"pymatgen(\..*)?")
    from betenet.runtime import configure

    configure(threads=threads)
    if initializer is not None:
        initializer(*initargs)


@contextlib.contextmanager
def _thread_environment(threads: int):
    old = {k: os.environ.get(k) for k in THREAD_VARIABLES}
    os.environ.update({k: str(threads) for k in THREAD_VARIABLES})
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _stop(executor) -> None:
    """Stop the workers at once (the running tasks are abandoned) and release the executor."""
    processes = list(getattr(executor, "_processes", {}).values())  # no public handle before Python 3.14
    for p in processes:
        with contextlib.suppress(Exception):
            p.kill()
    executor.shutdown(wait=False, cancel_futures=True)
    for p in processes:
        with contextlib.suppress(Exception):
            p.join(timeout=5)


def run_tasks(tasks, work: Callable, jobs: int, on_done: Callable, on_crash: Callable, *, initializer=None,
              initargs=(), threads: int = 1) -> None:
    """Run ``work(task)`` for every task in ``tasks`` (picklable; in this order as workers free up) on
    ``jobs`` spawned workers (module docstring); ``on_done(task, result)`` in this process as each
    finishes, ``on_crash(task, reason)`` for a task whose worker died while running it alone."""
    queue = deque(tasks)
    suspects: deque = deque()
    ctx = multiprocessing.get_context(START_METHOD)
    with _thread_environment(threads):
        while queue or suspects:
            executor = ProcessPoolExecutor(max_workers=jobs, mp_context=ctx, initializer=_init_worker,
                                           initargs=(threads, initializer, initargs))
            running: dict = {}
            try:
                while queue or suspects or running:
                    # suspects run alone; otherwise keep every worker busy
                    while (not any(alone for _, alone in running.values()) and not (suspects and running)
                           and (suspects or queue) and len(running) < jobs):
                        if suspects:
                            task, alone = suspects.popleft(), True
                        else:
                            task, alone = queue.popleft(), False
                        running[executor.submit(work, task)] = (task, alone)
                        if alone:
                            break
                    finished, _ = wait(list(running), return_when=FIRST_COMPLETED)
                    broken = []
                    for future in finished:
                        task, alone = running.pop(future)
                        try:
                            result = future.result()
                        except BrokenProcessPool:
                            broken.append((task, alone))
                            continue
                        on_done(task, result)
                    if broken:
                        # every task still running died with the pool: the ones that ran alone are the culprits
                        broken += [running.pop(f) for f in list(running)]
                        for task, alone in broken:
                            if alone or len(broken) == 1:
                                on_crash(task, CRASH_REASON)
                            else:
                                suspects.append(task)
                        break  # a fresh pool for the rest
            except BaseException:
                _stop(executor)
                raise
            executor.shutdown(wait=True, cancel_futures=True)
