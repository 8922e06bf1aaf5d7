"""Paginated lists: ``?page=1&per_page=50`` in, ``{items, total, page, per_page, pages}`` out."""

from __future__ import annotations

from typing import Annotated, Any, Generic, TypeVar

from fastapi import Depends, Query
from pydantic import BaseModel
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

MAX_PER_PAGE = 200
T = TypeVar("T")


class PageParams(BaseModel):
    page: int
    per_page: int

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.per_page


def page_params(
    page: Annotated[int, Query(ge=1, le=1_000_000, description="1-based page number")] = 1,
    per_page: Annotated[int, Query(ge=1, le=MAX_PER_PAGE, description="items per page")] = 50,
) -> PageParams:
    return PageParams(page=page, per_page=per_page)


PageDep = Annotated[PageParams, Depends(page_params)]


class Page(BaseModel, Generic[T]):
    items: list[T]
    total: int
    page: int
    per_page: int
    pages: int


def make_page(items: list[T], total: int, params: PageParams) -> Page[T]:
    pages = (total + params.per_page - 1) // params.per_page
    return Page[T](items=items, total=total, page=params.page, per_page=params.per_page, pages=pages)


def paginate(db: Session, query: Select[Any], params: PageParams) -> tuple[list[Any], int]:
    """The page's rows and the total count (two queries; the count drops the ORDER BY)."""
    total = db.scalar(select(func.count()).select_from(query.order_by(None).subquery())) or 0
    rows = list(db.scalars(query.limit(params.per_page).offset(params.offset)))
    return rows, int(total)
