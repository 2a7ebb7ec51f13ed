"""The ``hyperscale`` command: recommendations and similar vectors from .npy files.

Exit codes: 0 on success, 2 for invalid input or usage (as argparse does), 1 when
writing the output fails or the reader closes stdout early, 130 on Ctrl-C. Errors
are printed as one line ``hyperscale: error: <message>`` on stderr, without a
traceback.
"""

import argparse
import os
import sys

import numpy as np

from . import _demo, _validation
from ._log import log_step
from ._version import __version__
from .facade import hyperscale
from .index import METRICS

PROG = "hyperscale"

EXIT_OK = 0
EXIT_RUNTIME_ERROR = 1
EXIT_INPUT_ERROR = 2
EXIT_INTERRUPTED = 130

# The first bytes of every .npy file, and of every .npz archive (a zip file).
NPY_MAGIC = b"\x93NUMPY"
ZIP_MAGIC = b"PK\x03\x04"


class CommandError(Exception):
    """An error that main() prints as one line and turns into an exit code."""

    def __init__(self, message, exit_code=EXIT_INPUT_ERROR):
        super().__init__(message)
        self.exit_code = exit_code


# ----------------------------------------------------------------------
# Argument parsing
# ----------------------------------------------------------------------


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _non_negative_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {value}")
    return value


def _add_index_options(parser, seed_default, seed_help):
    """Add the options that every subcommand passes on to the library."""
    parser.add_argument(
        "--n-trees",
        type=_positive_int,
        metavar="N",
        help="number of trees in the index (default: dim + 1 for inner-product search, dim otherwise)",
    )
    parser.add_argument(
        "--search-k",
        type=_positive_int,
        metavar="N",
        help=(
            "number of distinct candidates scored exactly per query; larger values give higher "
            "recall and slower queries (default: 2 * k * n_trees)"
        ),
    )
    parser.add_argument(
        "--seed", type=_non_negative_int, default=seed_default, metavar="S", help=seed_help
    )
    parser.add_argument(
        "--quiet",
        action="store_true",
        help="show no progress bars and no step logs on stderr (errors are still printed)",
    )


def build_parser():
    """Return the argument parser of the ``hyperscale`` command."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Fast top-k recommendations and vector similarity search on .npy files.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    run_seed_help = (
        "seed of the index build, for reproducible output "
        "(default: a fresh seed on every run, so results may differ slightly between runs)"
    )

    recommend = subparsers.add_parser(
        "recommend",
        help="find the top-k items for every user by inner product",
        description=(
            "Find the k items with the largest inner product for every user and save their "
            "row ids as an int32 array (n_users, k), best first."
        ),
    )
    recommend.add_argument(
        "--users", required=True, metavar="FILE", help=".npy file of user vectors (n_users, dim)"
    )
    recommend.add_argument(
        "--items", required=True, metavar="FILE", help=".npy file of item vectors (n_items, dim)"
    )
    recommend.add_argument(
        "-k", type=_positive_int, default=10, help="number of items per user (default: 10)"
    )
    recommend.add_argument(
        "-o", "--output", required=True, metavar="FILE", help=".npy file to write the item ids to"
    )
    _add_index_options(recommend, None, run_seed_help)
    recommend.set_defaults(handler=run_recommend)

    similar = subparsers.add_parser(
        "similar",
        help="find the k most similar vectors for every vector, or for one",
        description=(
            "Find the k most similar vectors for every row of a matrix and save their row ids as "
            "an int32 array (n_vectors, k), most similar first. With --id, save only the row of "
            "that vector, shape (k,)."
        ),
    )
    similar.add_argument(
        "--vectors", required=True, metavar="FILE", help=".npy file of vectors (n_vectors, dim)"
    )
    similar.add_argument(
        "-k", type=_positive_int, default=10, help="number of similar vectors per vector (default: 10)"
    )
    similar.add_argument(
        "-o", "--output", required=True, metavar="FILE", help=".npy file to write the ids to"
    )
    similar.add_argument(
        "--metric",
        choices=METRICS,
        default="euclidean",
        help=(
            "similarity measure: Euclidean distance, cosine (angular) or inner product "
            "(default: euclidean)"
        ),
    )
    similar.add_argument(
        "--exclude-self",
        action="store_true",
        help="leave each vector out of its own result (exact duplicates of it are still returned)",
    )
    similar.add_argument(
        "--id",
        type=_non_negative_int,
        dest="vector_id",
        metavar="N",
        help="row id of the one vector to search for (default: every row)",
    )
    _add_index_options(similar, None, run_seed_help)
    similar.set_defaults(handler=run_similar)

    demo = subparsers.add_parser(
        "demo",
        help="recommend on synthetic factors and report speed and recall against exact search",
        description=(
            "Generate synthetic matrix-factorisation vectors, recommend with hyperscale, find the "
            "exact top-k by NumPy brute force, and print the time of each step and the recall."
        ),
    )
    demo.add_argument(
        "--n-users",
        type=_positive_int,
        default=_demo.DEFAULT_N_USERS,
        metavar="N",
        help=f"number of users (default: {_demo.DEFAULT_N_USERS})",
    )
    demo.add_argument(
        "--n-items",
        type=_positive_int,
        default=_demo.DEFAULT_N_ITEMS,
        metavar="N",
        help=f"number of items (default: {_demo.DEFAULT_N_ITEMS})",
    )
    demo.add_argument(
        "--dim",
        type=_positive_int,
        default=_demo.DEFAULT_DIM,
        metavar="N",
        help=f"number of dimensions of the vectors (default: {_demo.DEFAULT_DIM})",
    )
    demo.add_argument(
        "-k",
        type=_positive_int,
        default=_demo.DEFAULT_K,
        help=f"number of items per user, and the k of recall@k (default: {_demo.DEFAULT_K})",
    )
    _add_index_options(
        demo,
        _demo.DEFAULT_SEED,
        f"seed of the generated vectors and of the index build (default: {_demo.DEFAULT_SEED})",
    )
    demo.set_defaults(handler=run_demo)
    return parser


# ----------------------------------------------------------------------
# Input and output files
# ----------------------------------------------------------------------


def load_matrix(path, option):
    """Load a 2-D numeric array from the .npy file ``path`` as float32.

    Raises CommandError for a missing, unreadable or invalid file. ``option`` is the
    command-line option that named the file, for the messages.
    """
    label = f"{option} file {path}"
    try:
        with open(path, "rb") as file:
            magic = file.read(len(NPY_MAGIC))
            if not magic:
                raise CommandError(f"{label} is empty; save the array with numpy.save")
            if magic.startswith(ZIP_MAGIC):
                raise CommandError(
                    f"{label} is a .npz archive; save a single array with numpy.save instead"
                )
            if magic != NPY_MAGIC:
                raise CommandError(f"{label} is not a .npy file; save the array with numpy.save")
            file.seek(0)
            array = np.load(file, allow_pickle=False)
    except FileNotFoundError:
        raise CommandError(f"{label} not found") from None
    except IsADirectoryError:
        raise CommandError(f"{label} is a directory, expected a .npy file") from None
    except OSError as error:
        raise CommandError(f"failed to read {label}: {error.strerror or error}") from None
    except (ValueError, EOFError) as error:
        # np.load raises ValueError for truncated files and for arrays of Python
        # objects, and EOFError for a file without data.
        raise CommandError(f"failed to load {label}: {error}; save a numeric array with numpy.save") from None

    if array.ndim != 2:
        raise CommandError(
            f"{label} contains an array of shape {array.shape}, "
            "but a 2-D array (n_vectors, dim) is expected"
        )
    try:
        return _validation.as_matrix(array, label)
    except (ValueError, TypeError) as error:
        raise CommandError(str(error)) from None


def check_output_path(path):
    """Raise CommandError unless ``path`` can name a new or existing file.

    The commands call this before loading the input, so that a wrong path fails fast.
    """
    if os.path.isdir(path):
        example = os.path.join(path, "ids.npy")
        raise CommandError(f"output {path} is a directory; give a file name such as {example}")
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise CommandError(f"output directory {directory} does not exist; create it first")


def save_ids(path, ids, verbose):
    """Write ``ids`` to ``path`` in .npy format, at exactly that path (no suffix is added)."""
    try:
        with open(path, "wb") as file:
            np.save(file, ids, allow_pickle=False)
    except OSError as error:
        message = f"failed to write output {path}: {error.strerror or error}"
        raise CommandError(message, EXIT_RUNTIME_ERROR) from None
    log_step(verbose, "saved %s ids of shape %s to %s", ids.dtype, ids.shape, path)


def _call_library(function, *args, **kwargs):
    """Call the library and turn its input errors into CommandError."""
    # NOTE: a TypeError or ValueError raised by a bug inside the library is reported
    # the same way, as an input error without a traceback.
    try:
        return function(*args, **kwargs)
    except (ValueError, TypeError, IndexError) as error:
        raise CommandError(str(error)) from None
    except OSError as error:
        raise CommandError(str(error), EXIT_RUNTIME_ERROR) from None


# ----------------------------------------------------------------------
# Subcommands
# ----------------------------------------------------------------------


def _engine(args):
    return hyperscale(random_state=args.seed, show_progress=not args.quiet, verbose=not args.quiet)


def run_recommend(args):
    """Run ``hyperscale recommend`` and return the exit code."""
    check_output_path(args.output)
    users = load_matrix(args.users, "--users")
    items = load_matrix(args.items, "--items")
    if users.shape[1] != items.shape[1]:
        raise CommandError(
            f"--users file {args.users} has {users.shape[1]} dimensions but --items file {args.items} "
            f"has {items.shape[1]}; both must come from the same model"
        )
    n_items = items.shape[0]
    if args.k > n_items:
        raise CommandError(
            f"-k {args.k} is larger than the number of items in {args.items} ({n_items}); "
            f"use -k {n_items} or less"
        )

    ids = _call_library(
        _engine(args).recommend,
        users,
        items,
        n_vectors=args.k,
        n_trees=args.n_trees,
        search_k=args.search_k,
    )
    save_ids(args.output, ids, not args.quiet)
    return EXIT_OK


def run_similar(args):
    """Run ``hyperscale similar`` and return the exit code."""
    check_output_path(args.output)
    vectors = load_matrix(args.vectors, "--vectors")
    n_vectors = vectors.shape[0]
    if args.vector_id is not None and args.vector_id >= n_vectors:
        raise CommandError(
            f"--id {args.vector_id} is out of range: {args.vectors} contains {n_vectors} vectors, "
            f"so valid ids are 0 to {n_vectors - 1}"
        )
    if args.exclude_self:
        if n_vectors < 2:
            raise CommandError(
                f"--exclude-self needs at least 2 vectors, but {args.vectors} contains {n_vectors}"
            )
        if args.k > n_vectors - 1:
            raise CommandError(
                f"-k {args.k} is larger than the number of other vectors in {args.vectors} "
                f"({n_vectors - 1}); "
                f"use -k {n_vectors - 1} or less with --exclude-self"
            )
    elif args.k > n_vectors:
        raise CommandError(
            f"-k {args.k} is larger than the number of vectors in {args.vectors} ({n_vectors}); "
            f"use -k {n_vectors} or less"
        )

    ids = _call_library(
        _engine(args).find_similar_vectors,
        vectors,
        vector_id=args.vector_id,
        n_vectors=args.k,
        n_trees=args.n_trees,
        metric=args.metric,
        search_k=args.search_k,
        exclude_self=args.exclude_self,
    )
    save_ids(args.output, ids, not args.quiet)
    return EXIT_OK


def run_demo(args):
    """Run ``hyperscale demo`` and return the exit code."""
    if args.k > args.n_items:
        raise CommandError(
            f"-k {args.k} is larger than --n-items {args.n_items}; use -k {args.n_items} or less"
        )

    def print_line(line):
        # Flush each line so that it shows before the next step's progress bar on stderr.
        print(line, flush=True)

    _demo.run_demo(
        n_users=args.n_users,
        n_items=args.n_items,
        dim=args.dim,
        seed=args.seed,
        k=args.k,
        n_trees=args.n_trees,
        search_k=args.search_k,
        quiet=args.quiet,
        print_line=print_line,
    )
    return EXIT_OK


# ----------------------------------------------------------------------
# Entry point
# ----------------------------------------------------------------------


def main(argv=None):
    """Run the ``hyperscale`` command with ``argv`` (default: sys.argv[1:]) and return the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_request:
        # argparse exits after --help and --version (code 0) and after a usage error
        # (code 2, with the message already on stderr).
        code = exit_request.code
        if code is None:
            return EXIT_OK
        if isinstance(code, int):
            return code
        return EXIT_RUNTIME_ERROR

    try:
        return args.handler(args)
    except CommandError as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return error.exit_code
    except BrokenPipeError:
        # The reader closed stdout early, as `hyperscale demo | head -1` does. Point
        # stdout at devnull so that the flush at exit does not raise again (the
        # "Note on SIGPIPE" in the Python documentation of the signal module).
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_RUNTIME_ERROR
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
