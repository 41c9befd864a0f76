"""What a datasource of a dataset is used for."""

from __future__ import annotations

from enum import StrEnum


class DatasourcePurpose(StrEnum):
    """``INPUT`` is read (the images or videos); ``LIGHTLY`` is read and written (outputs,
    ``.selfsup/relevant_filenames.txt``, thumbnails); ``INPUT_OUTPUT`` sets both at once."""

    INPUT_OUTPUT = "INPUT_OUTPUT"
    INPUT = "INPUT"
    LIGHTLY = "LIGHTLY"
