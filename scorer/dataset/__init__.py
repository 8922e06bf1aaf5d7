"""Synthetic handwritten katakana in the course's format, drawn from pen strokes (no fonts, no downloads).

Use :func:`make_dataset` / :func:`write_dataset` for the full set and :func:`sample_images` for a
quick handful; see :mod:`scorer.dataset.generate` for the format.
"""

from scorer.dataset.generate import (
    COURSE_FORMAT,
    FILE_NAMES,
    N_WRITERS,
    TEST_WRITERS,
    TRAIN_WRITERS,
    DataFormat,
    KatakanaSet,
    make_dataset,
    make_split,
    sample_images,
    to_format,
    write_dataset,
    writers_for,
)
from scorer.dataset.writers import WriterStyle

__all__ = [
    "COURSE_FORMAT",
    "FILE_NAMES",
    "N_WRITERS",
    "TEST_WRITERS",
    "TRAIN_WRITERS",
    "DataFormat",
    "KatakanaSet",
    "WriterStyle",
    "make_dataset",
    "make_split",
    "sample_images",
    "to_format",
    "write_dataset",
    "writers_for",
]
