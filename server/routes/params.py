"""Query parameter types the routes share: each accepts exactly the values it can mean.

A number compared with a BIGINT column of the index (a seq, a step) must be one the format
allows (waddle/event.py: seqs and steps up to 2**63 - 2, any count within int64), and a
bound on the x axis must be a finite float; anything else is refused before a route runs, as
a 422 in the API's error shape (``invalid_parameter``), instead of failing inside DuckDB.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Query

from waddle.event import SEQ_MAX, STEP_MAX
from waddle.ranks import RANK_MAX

# A seq cursor: the previous page's or message's ``cursor``; -1 is before the first event.
After = Annotated[int, Query(ge=-1, le=SEQ_MAX, description="a seq; -1: from the first")]
Step = Annotated[int | None, Query(ge=0, le=STEP_MAX)]
# NaN and ±Infinity bound nothing: a range is between two finite numbers.
Bound = Annotated[float | None, Query(allow_inf_nan=False, description="a finite number")]
Limit = Annotated[int, Query(ge=1, le=10_000)]
# A rank of a run whose ranks share it (waddle/ranks.py); None: the default the route says.
RANK_HELP = "a rank of the run (docs/format.md, Ranks); default: rank 0"
Rank = Annotated[int | None, Query(ge=0, le=RANK_MAX, description=RANK_HELP)]
