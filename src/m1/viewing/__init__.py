"""`m1 view`: a local trace explorer over evaluation runs (issue #16).

    catalog = Catalog(open_runs(["runs/base", "runs/tuned"]))   # runs.py, catalog.py
    app = create_app(catalog)                                   # app.py: pages + JSON API
    m1 view runs/base runs/tuned                                # command.py

index.py keeps a small sqlite index beside each run (built once, updated as predictions are
appended); query.py turns the list's filters into SQL over it; item.py reads one item's lines
by offset and shows them as `m1.evaluation.trace` segments.
"""

from m1.viewing.catalog import Catalog, QueryError
from m1.viewing.index import INDEX_NAME, RunIndex, read_prediction
from m1.viewing.query import ItemQuery, list_items, parse_query
from m1.viewing.runs import Run, open_run, open_runs

__all__ = ["INDEX_NAME", "Catalog", "ItemQuery", "QueryError", "Run", "RunIndex", "list_items", "open_run",
           "open_runs", "parse_query", "read_prediction"]
