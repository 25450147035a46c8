"""Unpickling CIFAR's python batches without running code: only the globals that rebuild numpy arrays.

A pickle can call any importable function while it loads (`os.system`, `builtins.eval`, ...). The CIFAR batches
are dicts of lists, bytes and one uint8 array; rebuilding that array is all the globals they may name.
"""

from __future__ import annotations

import _codecs
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from diffdis.errors import DiffDisError

try:  # numpy >= 2
    from numpy._core.multiarray import _reconstruct
    from numpy._core.numeric import _frombuffer
except ImportError:  # numpy 1.x
    from numpy.core.multiarray import _reconstruct
    from numpy.core.numeric import _frombuffer

ALLOWED: dict[tuple[str, str], Any] = {
    # the real files: Python 2 cPickle, protocol 2, written by numpy 1 (numpy.core); numpy 2 names it numpy._core
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    # Python 3 writing protocol 2 stores bytes as _codecs.encode(text, 'latin1'); protocol 5 arrays use _frombuffer
    ("_codecs", "encode"): _codecs.encode,
    ("numpy.core.numeric", "_frombuffer"): _frombuffer,
    ("numpy._core.numeric", "_frombuffer"): _frombuffer,
}


class RefusedGlobal(pickle.UnpicklingError):
    pass


class ArrayUnpickler(pickle.Unpickler):
    """`pickle.Unpickler` whose `find_class` answers only ALLOWED; anything else is refused before it is imported."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in ALLOWED:
            raise RefusedGlobal(f"{module}.{name}")
        return ALLOWED[(module, name)]


def load_arrays(path: Path) -> Any:
    """A pickle of plain data and numpy arrays, read as Python 2 wrote it (keys come back as bytes)."""
    try:
        with open(path, "rb") as handle:
            return ArrayUnpickler(handle, encoding="bytes").load()
    except RefusedGlobal as err:
        raise DiffDisError(
            f"{path}: refusing to unpickle the global {err} (a CIFAR batch holds only arrays and lists)"
        ) from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError, KeyError, AttributeError) as err:
        raise DiffDisError(f"{path} is not a readable CIFAR python batch ({type(err).__name__}: {err})") from None
