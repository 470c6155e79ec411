"""The write load of the batch Distributed Map on the DynamoDB tables, stated once.

Each row a child ingests (paylib.batch, `_write_group`) is one TransactWriteItems Put of the
payment into the transactions table, conditional on its id, plus the velocity counters it moves,
also as transactional Puts. A transactional write costs 2 write units per KB, and each global
secondary index the item appears in (both transaction indexes project ALL) 1 per KB. Counted by
`benchmarks/batch_map.py` on the exact batch a child receives (it prints the units per row of each
table and index next to these numbers; README "Batch ingestion", "Write throughput").

Warm throughput is per table and per index, so the table or index the rows write most to sets
what one child costs; the batch status table gets one UpdateItem per batch (0.01 per row) and is
left at the on-demand default.
"""
from __future__ import annotations

# Write units per ingested row, per table (purpose as in data.TABLES) or "table/index".
WRITE_UNITS_PER_ROW = {
    "transactions": 2,  # the payment item, under 1 KB, written in a transaction
    "transactions/by-customer": 1,  # the same item in each index (projection ALL), 1 per KB
    "transactions/by-status": 1,
    "velocity": 3,  # the counters a row moves (customer and card), about 1.5 KB a row, transactional
}
# A child at the modelled 2.70 ms per row on AWS (benchmarks/batch_map.py, README "Model: wall
# time"): about 370 rows/s. The nominal time is the faster one, so this is the higher write rate.
ROWS_PER_S_PER_CHILD = 370
# What one child writes per second to the table or index it writes most to.
WRITE_UNITS_PER_CHILD_PER_S = ROWS_PER_S_PER_CHILD * max(WRITE_UNITS_PER_ROW.values())

# A new on-demand table (and each of its indexes) serves 4,000 write units/s at once, then scales
# toward double its previous peak within 30 minutes (DynamoDB developer guide, "Initial throughput"
# of on-demand mode; "Understanding DynamoDB warm throughput").
ON_DEMAND_WARM_WRITE_UNITS_PER_S = 4_000
# The default per-table throughput quota of an account (on-demand: 40,000 write units/s per table).
# Warm throughput cannot be lowered once raised, so a value beyond the quota (a typo) is refused
# rather than made permanent; a larger value needs the quota raised first.
TABLE_WRITE_QUOTA_PER_S = 40_000


def warmed_tables() -> tuple[str, ...]:
    """The tables whose rows the batch writes: they (and the written indexes) get the warm throughput."""
    return tuple(sorted({target.split("/")[0] for target in WRITE_UNITS_PER_ROW}))


def warmed_indexes(table: str) -> tuple[str, ...]:
    return tuple(sorted(target.split("/")[1] for target in WRITE_UNITS_PER_ROW if target.startswith(table + "/")))
