"""What every stage writes per candidate: a typed row.

Each stage declares one dataclass that extends :class:`Row` with its own result fields (units in the field
comments); :meth:`engine.io.store.ResultStore.append_rows` turns a list of such rows into HDF5 columns, the dtype of
each column taken from the field's type (``float`` → float64, ``int`` → int64, ``bool``, ``str`` → UTF-8,
``np.ndarray`` → the stacked arrays' dtype and shape, ``Structure | None`` → the ragged ``structure/`` subgroup).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum


class Status(StrEnum):
    """A candidate's outcome at one stage; a candidate without a row there is still pending."""

    PASS = "pass"
    FAIL = "fail"
    ERROR = "error"


@dataclass
class Row:
    """What every row has; a stage's row dataclass adds its result fields (with their units)."""
    id: str  # candidate (or reference phase) id
    status: Status
    reason: str = ""  # why it failed or erred; notes on a pass
    # an error that says nothing about the candidate (out of memory, a whole batch's model failure): a rerun retries it
    transient: bool = field(default=False, kw_only=True)


NAN = float("nan")


def short_error(exc: BaseException) -> str:
    """One line naming an exception, for a recorded reason."""
    return f"{type(exc).__name__}: {exc}".splitlines()[0][:200]


@dataclass
class ChunkResult:
    """What one chunk of a stage adds to the run file: its rows, and arrays (path -> array) written before them (a
    run killed between the two rewrites the arrays on resume)."""
    rows: Sequence[Row]
    arrays: Mapping[str, object] = field(default_factory=dict)
