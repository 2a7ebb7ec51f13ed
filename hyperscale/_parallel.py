"""Call a parallel Numba kernel safely from any Python thread."""

import threading

import numba

# Numba's "workqueue" threading layer, its fallback when neither TBB nor OpenMP is
# available, aborts the process when two Python threads run parallel kernels at
# once. The "omp" and "tbb" layers allow it, so the lock is taken only for the
# workqueue layer, and for the first call, before the layer is known.
_WORKQUEUE_LOCK = threading.Lock()


def run_parallel(kernel, *args):
    """Call ``kernel(*args)``, holding a lock when the threading layer needs one."""
    try:
        thread_safe = numba.threading_layer() != "workqueue"
    except ValueError:
        thread_safe = False
    if thread_safe:
        kernel(*args)
    else:
        with _WORKQUEUE_LOCK:
            kernel(*args)
