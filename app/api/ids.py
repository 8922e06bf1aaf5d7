"""Id parameters bounded to what the database can hold, so absurd ids are a 422, not a driver error."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query

from app.api.schemas import MAX_ID

PathId = Annotated[int, Path(ge=1, le=MAX_ID)]
QueryId = Annotated[int | None, Query(ge=1, le=MAX_ID)]
