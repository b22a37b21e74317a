"""Views of a run file for counting: the same reading methods, without some rows."""

from __future__ import annotations

import numpy as np

from engine.io.store import ResultStore


class RowsExcept:
    """A read-only view of a store without the rows of some ids (e.g. a run's controls, which the funnel counts leave
    out): ``column``, ``column_by_id``, ``ids`` and ``done_ids`` skip them; everything else is the store's."""

    def __init__(self, store: ResultStore, excluded: set[str]):
        self.store, self.excluded = store, set(excluded)

    def __getattr__(self, name):
        return getattr(self.store, name)

    def column(self, group_name: str, name: str) -> np.ndarray:
        values = self.store.column(group_name, name)
        if not self.excluded:
            return values
        return values[~np.isin(self.store.column(group_name, "id").astype(str), list(self.excluded))]

    def ids(self, group_name: str, status: str | None = None) -> list[str]:
        return [i for i in self.store.ids(group_name, status) if i not in self.excluded]

    def column_by_id(self, group_name: str, name: str) -> dict[str, object]:
        return {k: v for k, v in self.store.column_by_id(group_name, name).items() if k not in self.excluded}

    def done_ids(self, group_name: str) -> set[str]:
        return self.store.done_ids(group_name) - self.excluded
