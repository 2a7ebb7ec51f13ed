"""hyperscale: fast top-k recommendations and vector similarity search.

>>> from hyperscale import hyperscale
>>> hs = hyperscale()
>>> recommendations = hs.recommend(user_vectors, item_vectors)  # doctest: +SKIP

Importing the package compiles nothing: the Numba kernels compile on first use
and are cached on disk.
"""

from ._log import LOGGER_NAME
from ._version import __version__
from .facade import hyperscale
from .index import VectorIndex

__all__ = ["LOGGER_NAME", "VectorIndex", "__version__", "hyperscale"]
