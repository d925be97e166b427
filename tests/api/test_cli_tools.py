"""`embcluster ingest FILE` (JSONL, CSV, Parquet; checkpoints; bad rows) and `embcluster cluster`
against a real in-process server."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from embcluster.cli import main
from embcluster.data import load_wordnet


def _vec_rows(n: int, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(3, 6)) * 4
    vecs = centres[rng.integers(0, 3, n)] + rng.normal(size=(n, 6))
    return [{"id": f"p{i}", "vector": [round(float(x), 5) for x in v], "price": i % 7} for i, v in enumerate(vecs)]


def _csv(path: Path, rows: list[dict]) -> None:
    lines = ["id,vector,price"] + [f'{r["id"]},"{json.dumps(r["vector"])}",{r["price"]}' for r in rows]
    path.write_text("\n".join(lines) + "\n")


def _jsonl(path: Path, rows: list[dict], mode: str = "w") -> None:
    with open(path, mode) as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")


def _checkpoint(path: Path) -> dict:
    return json.loads(path.with_name(path.name + ".embcluster-checkpoint.json").read_text())


def _ingest(running, path: Path, *extra: str) -> int:
    return main(["ingest", str(path), "--server", running.server.address, *extra])


def test_ingest_jsonl_text_then_only_what_was_appended(running, tmp_path, capsys) -> None:
    c = running.client
    c.create_collection("docs", input_kind="text")
    rows = [{"id": r["id"], "text": r["text"], "category": r["category"], "word": r["word"]}
            for r in load_wordnet(60)]
    path = tmp_path / "docs.jsonl"
    _jsonl(path, rows[:50])
    with open(path, "a") as f:
        f.write("\n")  # a blank line is not a row
    assert _ingest(running, path, "-c", "docs", "--batch-size", "16", "--metadata-fields", "category,word") == 0
    out = capsys.readouterr()
    assert "ingested 50 rows into docs" in out.out
    assert "ingest docs.jsonl: 50/50 rows 100.0%" in out.err  # plain progress lines when not a TTY
    assert c.get_collection("docs").point_count == 50
    p = c.get_point("docs", id=rows[3]["id"])
    assert p.text == rows[3]["text"] and p.metadata["category"] == rows[3]["category"]
    cp = _checkpoint(path)
    assert cp["rows"] == 50 and cp["ingested"] == 50 and cp["schema_version"] == 1
    # Nothing new: nothing sent. Appended rows: only those.
    assert _ingest(running, path, "-c", "docs", "--metadata-fields", "category,word") == 0
    assert "ingested 0 rows" in capsys.readouterr().out
    _jsonl(path, rows[50:], mode="a")
    assert _ingest(running, path, "-c", "docs", "--metadata-fields", "category,word") == 0
    assert "ingested 10 rows into docs; resumed after row 50" in capsys.readouterr().out
    assert c.get_collection("docs").point_count == 60
    assert _checkpoint(path)["ingested"] == 60


def test_ingest_csv_stops_at_a_bad_row_and_resumes_after_the_fix(running, tmp_path, capsys) -> None:
    c = running.client
    c.create_collection("vec", input_kind="vector", vector_dim=6, distance="euclid")
    rows = _vec_rows(250)
    good_vector = rows[119]["vector"]
    rows[119]["vector"] = good_vector[:5]  # row 120: wrong dimension
    path = tmp_path / "vec.csv"
    _csv(path, rows)
    assert _ingest(running, path, "-c", "vec", "--batch-size", "50", "--metadata-fields", "price") == 1
    err = capsys.readouterr().err
    assert "row 120 (line 121), field 'vector'" in err and "has 5 values" in err
    # Everything before the bad row is stored and checkpointed; nothing after it was sent.
    assert c.get_collection("vec").point_count == 119
    assert _checkpoint(path)["rows"] == 119
    # Fix the row (after the checkpointed prefix) and re-run: resumes at row 120.
    rows[119]["vector"] = good_vector
    _csv(path, rows)
    assert _ingest(running, path, "-c", "vec", "--batch-size", "50", "--metadata-fields", "price") == 0
    out = capsys.readouterr()
    assert "resuming" in out.err and "ingested 131 rows into vec; resumed after row 119" in out.out
    assert c.get_collection("vec").point_count == 250  # no duplicates, nothing lost
    assert c.get_point("vec", id="p119").metadata["price"] == "0"  # CSV values stay strings
    stored = c.get_point("vec", id="p249", with_vector=True).vector
    got = np.frombuffer(stored.f32, dtype="<f4") if stored.f32 else np.asarray(stored.values)
    assert np.allclose(got, rows[249]["vector"], atol=1e-5)
    # A change before the checkpointed position is refused, --restart re-ingests (ids: no duplicates).
    rows[0]["price"] = 99
    _csv(path, rows)
    assert _ingest(running, path, "-c", "vec") == 1
    assert "no longer starts with the 250 rows" in capsys.readouterr().err
    assert _ingest(running, path, "-c", "vec", "--restart", "--metadata-fields", "price") == 0
    assert c.get_collection("vec").point_count == 250
    assert c.get_point("vec", id="p0").metadata["price"] == "99"


def test_server_rejected_row_stops_then_skip_invalid_reports_it(running, tmp_path, capsys) -> None:
    c = running.client
    c.create_collection("feed", input_kind="vector", vector_dim=6)
    rows = _vec_rows(120, seed=3)
    rows[70]["note"] = "x" * 70_000  # over the server's metadata limit: only the server knows
    for r in rows:
        r.setdefault("note", "ok")
    path = tmp_path / "feed.jsonl"
    _jsonl(path, rows)
    assert _ingest(running, path, "-c", "feed", "--batch-size", "40", "--metadata-fields", "note") == 1
    err = capsys.readouterr().err
    assert "row 71 (line 71)" in err and "rejected by the server" in err and "metadata" in err
    assert c.get_collection("feed").point_count == 70 and _checkpoint(path)["rows"] == 70
    report = tmp_path / "skipped.jsonl"
    assert _ingest(running, path, "-c", "feed", "--batch-size", "40", "--metadata-fields", "note",
                   "--skip-invalid", "--skipped-file", str(report)) == 0
    out = capsys.readouterr()
    assert "ingested 49 rows into feed, skipped 1" in out.out and "skipped row 71" in out.err
    assert c.get_collection("feed").point_count == 119
    skipped = [json.loads(line) for line in report.read_text().splitlines()]
    assert len(skipped) == 1 and skipped[0]["row"] == 71 and "metadata" in skipped[0]["error"]
    cp = _checkpoint(path)
    assert (cp["rows"], cp["ingested"], cp["skipped"]) == (120, 119, 1)


def test_bad_rows_found_client_side_are_named(running, tmp_path, capsys) -> None:
    c = running.client
    c.create_collection("t", input_kind="text")
    path = tmp_path / "t.jsonl"
    path.write_text('{"id": "a", "text": "a fine sentence"}\n{"id": "b", "text": ""}\nnot json\n'
                    '{"id": "d", "body": "x"}\n[1, 2]\n{"id": "f", "text": "another fine sentence"}\n')
    assert _ingest(running, path, "-c", "t", "--skip-invalid") == 0
    out = capsys.readouterr()
    assert "ingested 2 rows into t, skipped 4" in out.out
    report = [json.loads(line) for line in (tmp_path / "t.jsonl.embcluster-skipped.jsonl").read_text().splitlines()]
    assert [(r["row"], r["field"]) for r in report] == [(2, "text"), (3, None), (4, "text"), (5, None)]
    assert "empty text" in report[0]["error"] and "invalid JSON" in report[1]["error"]
    assert c.get_collection("t").point_count == 2
    assert _ingest(running, tmp_path / "missing.jsonl", "-c", "t") == 1
    assert "is not a file" in capsys.readouterr().err
    odd = tmp_path / "data.txt"
    odd.write_text("x\n")
    assert _ingest(running, odd, "-c", "t") == 1
    assert "--format" in capsys.readouterr().err
    assert _ingest(running, path, "-c", "nope", "--restart") == 1
    assert "NOT_FOUND" in capsys.readouterr().err


def test_ingest_parquet_resumes_by_rows(running, tmp_path, capsys) -> None:
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    c = running.client
    c.create_collection("pq", input_kind="vector", vector_dim=6)
    rows = _vec_rows(90, seed=5)
    rows[60]["vector"] = [float("nan")] * 6
    path = tmp_path / "pq.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    assert _ingest(running, path, "-c", "pq", "--batch-size", "25", "--id-field", "id") == 1
    assert "row 61, field 'vector'" in capsys.readouterr().err
    assert c.get_collection("pq").point_count == 60
    assert _ingest(running, path, "-c", "pq", "--batch-size", "25", "--skip-invalid") == 0
    out = capsys.readouterr().out
    assert "ingested 29 rows into pq, skipped 1 (listed in" in out and "resumed after row 60" in out
    assert c.get_collection("pq").point_count == 89


def test_cluster_command_shows_progress_and_reports_the_model(running, capsys) -> None:
    c = running.client
    c.create_collection("cl", input_kind="vector", vector_dim=6, distance="euclid")
    c.ingest("cl", [{"id": r["id"], "vector": r["vector"]} for r in _vec_rows(200, seed=7)])
    assert main(["cluster", "cl", "-k", "3", "--server", running.server.address]) == 0
    out = capsys.readouterr()
    assert "model v1, k=3, 200 points labelled" in out.out
    assert "cluster cl (" in out.err and "cluster cl (done): 100%" in out.err
    assert main(["cluster", "cl", "--k-range", "2", "4", "--server", running.server.address]) == 0
    assert "model v2" in capsys.readouterr().out
    assert main(["cluster", "nope", "-k", "3", "--server", running.server.address]) == 1
    assert "NOT_FOUND" in capsys.readouterr().err


def test_health_command(running, capsys, monkeypatch) -> None:
    assert main(["health", "--server", running.server.address]) == 0
    assert capsys.readouterr().out.strip() == "SERVING"
    monkeypatch.setenv("EMBCLUSTER_PORT", running.server.address.rsplit(":", 1)[1])
    assert main(["health"]) == 0  # 127.0.0.1 and the configured port
    capsys.readouterr()
    assert main(["health", "--server", "127.0.0.1:1", "--timeout", "1"]) == 1
    err = capsys.readouterr().err
    assert "UNAVAILABLE" in err or "DEADLINE_EXCEEDED" in err


def test_server_gone_mid_file_then_resume_on_a_restarted_server(running, tmp_path) -> None:
    from embcluster_client import EmbclusterClient
    from embcluster_client.file_ingest import IngestFailed, IngestOptions, ingest_file

    from tests.api.conftest import Running

    running.client.create_collection("crash", input_kind="vector", vector_dim=6)
    rows = _vec_rows(300, seed=9)
    path = tmp_path / "crash.jsonl"
    _jsonl(path, rows)
    opts = IngestOptions(collection="crash", batch_size=50)
    batches = []

    def stop_after_two(n: int) -> None:  # the server goes away after two acknowledged batches
        batches.append(n)
        if len(batches) == 2:
            running.client.close()
            running.server.stop(grace=0)
            running.service.close()

    with EmbclusterClient(running.server.address, timeout=5) as client:
        with pytest.raises(IngestFailed) as failed:
            ingest_file(client, path, opts, on_batch=stop_after_two)
    assert "UNAVAILABLE" in failed.value.message and "re-run to resume" in failed.value.message
    assert _checkpoint(path)["rows"] == 100
    again = Running(running.settings, running.service.embedders.text(""))  # same data directory
    try:
        assert again.client.get_collection("crash").point_count == 100  # what was acknowledged survived
        summary = ingest_file(again.client, path, opts)
        assert (summary.resumed_from_row, summary.ingested, summary.total_ingested) == (100, 200, 300)
        assert again.client.get_collection("crash").point_count == 300
    finally:
        again.stop()
        running.stop = lambda: None  # already stopped above


def test_csv_text_rows_with_quotes_newlines_and_a_bad_byte(running, tmp_path, capsys) -> None:
    c = running.client
    c.create_collection("q", input_kind="text")
    path = tmp_path / "q.csv"
    path.write_bytes(b'\xef\xbb\xbfid,text,lang\n'  # a BOM, as spreadsheets write it
                     b'a,"a quoted, multi-line\ntext about rivers",en\n'
                     b'b,caf\xe9 in latin-1,fr\n'  # not UTF-8
                     b'c,"plain ""quoted"" words",en\n')
    assert _ingest(running, path, "-c", "q", "--metadata-fields", "lang") == 1
    err = capsys.readouterr().err
    assert "row 2 (line 4)" in err and "invalid CSV" in err
    assert c.get_collection("q").point_count == 1
    assert c.get_point("q", id="a").text == "a quoted, multi-line\ntext about rivers"
    assert _ingest(running, path, "-c", "q", "--metadata-fields", "lang", "--skip-invalid") == 0
    assert c.get_point("q", id="c").text == 'plain "quoted" words'
    assert c.get_collection("q").point_count == 2


def test_a_repeated_id_in_one_batch_is_a_later_version_not_a_bad_row(running, tmp_path, capsys) -> None:
    c = running.client
    c.create_collection("log", input_kind="vector", vector_dim=6)
    rows = _vec_rows(12, seed=11)
    rows[7] = {**rows[2], "vector": rows[9]["vector"], "price": 42}  # row 8 updates the point of row 3
    path = tmp_path / "log.jsonl"
    _jsonl(path, rows)
    assert _ingest(running, path, "-c", "log", "--batch-size", "50", "--metadata-fields", "price") == 0
    assert "ingested 12 rows into log" in capsys.readouterr().out
    assert c.get_collection("log").point_count == 11
    assert c.get_point("log", id="p2").metadata["price"] == 42  # the file's last version
    cp = _checkpoint(path)
    assert (cp["rows"], cp["ingested"], cp["skipped"]) == (12, 12, 0)


def test_ingest_event_csv_reads_cells_by_the_schema_and_names_a_bad_number(running, tmp_path, capsys) -> None:
    from embcluster_client import make_event_schema

    c = running.client
    c.create_collection("tx", input_kind="event", distance="euclid", event_schema=make_event_schema([
        {"name": "amount", "type": "numeric", "log": True, "required": True},
        {"name": "merchant", "type": "categorical"},
        {"name": "ts", "type": "timestamp"},
    ]))
    path = tmp_path / "tx.csv"
    lines = ["id,amount,merchant,ts,channel"]
    lines += [f"t{i},{5 + i},{['cafe', 'grocery'][i % 2]},2026-10-0{1 + i % 9}T13:00:00Z,web" for i in range(20)]
    lines.append("t20,12.5,cafe,,web")  # an empty timestamp cell is a missing value
    lines.append("t21,lots,cafe,2026-10-01T13:00:00Z,web")  # not a number
    path.write_text("\n".join(lines) + "\n")
    assert _ingest(running, path, "-c", "tx", "--batch-size", "8") != 0
    err = capsys.readouterr().err
    assert "row 22" in err and "amount" in err and "'lots'" in err
    assert c.get_collection("tx").point_count == 21  # every row before the bad one
    p = c.get_point("tx", id="t3")
    assert p.source["amount"] == 8.0 and p.source["merchant"] == "grocery" and p.source["channel"] == "web"
    assert "ts" not in c.get_point("tx", id="t20").source


def test_ingest_image_metadata_jsonl_and_csv(running, tmp_path, capsys) -> None:
    c = running.client
    c.create_collection("icons", input_kind="image_metadata")
    rows = [{"id": f"i{i}", "title": f"icon {i}", "tags": ["arrow", "left"] if i % 2 else ["cat", "animal"],
             "attributes": {"weight": "bold"}} for i in range(6)]
    path = tmp_path / "icons.jsonl"
    _jsonl(path, rows)
    assert _ingest(running, path, "-c", "icons") == 0
    p = c.get_point("icons", id="i1")
    assert p.image.title == "icon 1" and list(p.image.tags) == ["arrow", "left"]
    assert p.image.attributes["weight"] == "bold"
    csv_path = tmp_path / "more.csv"
    csv_path.write_text('id,title,tags,attributes\nc1,a house,"home; building",{}\nc2,a tree,,"[1]"\n')
    assert _ingest(running, csv_path, "-c", "icons") != 0
    err = capsys.readouterr().err
    assert "row 2" in err and "attributes" in err
    assert list(c.get_point("icons", id="c1").image.tags) == ["home", "building"]
