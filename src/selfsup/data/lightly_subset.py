"""``LightlySubset``: a :class:`~selfsup.data.dataset.LightlyDataset` restricted to a list of
names, in the order of the list (lightly's ``data.LightlySubset``).

Typical use: train or evaluate on the samples a selection picked, read from the same folder
without listing or checking it again.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any, SupportsIndex

from selfsup.data._folder import list_names, normalize_relpath
from selfsup.data.dataset import LightlyDataset
from selfsup.errors import ConfigError, DataError

__all__ = ["LightlySubset"]


class LightlySubset(LightlyDataset):
    """The items of ``base_dataset`` named in ``filenames_subset``, in that order.

    ``subset[i]`` is ``base_dataset[j]`` where ``j`` is the index of the i-th name, so
    samples pass through the base dataset's transform (which the subset shares: setting
    ``subset.transform`` sets the base's). Nothing is read or listed again; the names are
    matched against ``base_dataset.get_filenames()`` once, at construction. A name may be
    given as the dataset spells it or in an equivalent relative form (``./a/b.png``,
    ``a\\b.png`` on Windows). A name listed twice gives two items.

    Args:
        base_dataset: The dataset to take items from (a folder dataset, a wrapped torch
            dataset or another subset).
        filenames_subset: Names as returned by ``base_dataset.get_filenames()``.

    Raises:
        DataError: Some names are not in ``base_dataset`` (the error lists them), or a name
            belongs to several items of ``base_dataset``.
        ConfigError: ``filenames_subset`` is a single string instead of a list of names.

    Examples:
        >>> dataset = LightlyDataset(input_dir="images/")  # doctest: +SKIP
        >>> subset = LightlySubset(dataset, ["b.png", "a.png"])  # doctest: +SKIP
        >>> subset[0][2]  # doctest: +SKIP
        'b.png'
    """

    def __init__(self, base_dataset: LightlyDataset, filenames_subset: Sequence[str]) -> None:
        # LightlyDataset.__init__ is not called on purpose: it would list and check a folder;
        # a subset borrows everything from its base instead.
        if isinstance(filenames_subset, str | bytes):
            raise ConfigError(
                f"LightlySubset: filenames_subset must be a list of names, got the single "
                f"string {filenames_subset!r}"
            )
        self.base_dataset = base_dataset
        self.input_dir: str | None = base_dataset.input_dir
        self.dataset: Any = base_dataset.dataset
        self.skipped: list[tuple[str, str]] = []
        self.index_to_filename: Callable[[Any, int], str] = self._subset_filename
        base_names = base_dataset.get_filenames()
        position: dict[str, int] = {}
        repeated: set[str] = set()
        for index, name in enumerate(base_names):
            if name in position:
                repeated.add(name)
            position.setdefault(name, index)
        indices: list[int] = []
        names: list[str] = []
        missing: list[str] = []
        ambiguous: list[str] = []
        for name in filenames_subset:
            key = name if name in position else normalize_relpath(str(name))
            if key not in position:
                missing.append(name)
                continue
            if key in repeated:
                ambiguous.append(key)
            indices.append(position[key])
            names.append(key)
        where = f" {base_dataset.input_dir!r}" if base_dataset.input_dir is not None else ""
        if missing:
            raise DataError(
                f"LightlySubset: {len(missing)} of {len(filenames_subset)} name(s) are not in "
                f"the base dataset{where} ({len(base_names)} items): {list_names(missing)}; "
                "names must be as base_dataset.get_filenames() returns them"
            )
        if ambiguous:
            raise DataError(
                f"LightlySubset: several items of the base dataset{where} are named "
                f"{list_names(sorted(set(ambiguous)))}; a subset by name needs unique names"
            )
        self.filenames_subset = names
        # lightly's name for the index map.
        self.mapping_subset_index_to_baseset_index = indices

    def _subset_filename(self, dataset: Any, index: int) -> str:
        """Name of subset item ``index`` (``dataset`` is unused; the signature is the one of
        ``LightlyDataset.index_to_filename``)."""
        return self.filenames_subset[index]

    @property
    def transform(self) -> Callable[[Any], Any] | None:
        """The base dataset's transform, applied to every sample on read."""
        return self.base_dataset.transform

    @transform.setter
    def transform(self, transform: Callable[[Any], Any] | None) -> None:
        self.base_dataset.transform = transform

    @property
    def targets(self) -> list[int]:
        """Target of every subset item, without reading any file (folder datasets)."""
        base_targets = self.base_dataset.targets
        return [base_targets[i] for i in self.mapping_subset_index_to_baseset_index]

    def __len__(self) -> int:
        return len(self.mapping_subset_index_to_baseset_index)

    def __getitem__(self, index: SupportsIndex) -> tuple[Any, Any, str]:
        """``(sample, target, filename)`` of the item named ``filenames_subset[index]``."""
        i = self._check_index(index)
        return self.base_dataset[self.mapping_subset_index_to_baseset_index[i]]

    def get_filenames(self) -> list[str]:
        """Names of the subset's items, in subset order."""
        return list(self.filenames_subset)

    def dump(
        self,
        output_dir: str | os.PathLike[str],
        filenames: Sequence[str] | None = None,
        format: str | None = None,
    ) -> None:
        """Write the subset's untransformed samples (or those of ``filenames``, which must
        belong to the subset) as :meth:`LightlyDataset.dump` does.

        Raises:
            DataError: A name is not in the subset.
        """
        if filenames is None:
            chosen = self.get_filenames()
        else:
            known = set(self.filenames_subset)
            chosen = [n if n in known else normalize_relpath(n) for n in filenames]
            missing = [n for n, c in zip(filenames, chosen, strict=True) if c not in known]
            if missing:
                raise DataError(
                    f"cannot dump {len(missing)} name(s) that are not in the subset: "
                    f"{list_names(missing)}"
                )
        self.base_dataset.dump(output_dir, chosen, format)
