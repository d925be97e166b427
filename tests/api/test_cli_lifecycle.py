"""The command line over a collection's whole life cycle (create, collections, info, ingest, cluster,
delete), its errors, and the demo's safety (no implicit deletes, clean output, no data left behind),
against a real in-process server."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from embcluster import cli_demo
from embcluster.cli import main
from embcluster.data import load_wordnet
from embcluster.schema import RunRequest


class _Terminal(io.StringIO):
    """A stdin that says it is a terminal and answers with ``text``."""

    def isatty(self) -> bool:
        return True


def _wordnet_jsonl(path: Path, n: int) -> Path:
    path.write_text("".join(json.dumps({"id": r["id"], "text": r["text"], "category": r["category"]}) + "\n"
                            for r in load_wordnet(n)))
    return path


def test_create_list_info_ingest_cluster_delete(running, tmp_path, capsys, monkeypatch) -> None:
    addr = running.server.address
    c = running.client
    assert main(["create", "notes", "--kind", "text", "--contamination", "0.05", "--default-k", "3",
                 "--seed", "7", "--after-changes", "500", "--target", addr]) == 0
    assert "created text collection 'notes' (all-MiniLM-L6-v2, 384-d, cosine)" in capsys.readouterr().out
    got = c.get_collection("notes")
    assert got.settings.contamination == 0.05 and got.settings.default_k == 3 and got.settings.seed == 7
    assert got.settings.schedule.after_changes == 500

    assert main(["collections", "--target", addr]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["name", "kind", "points", "model", "clusters", "anomalies", "run", "in", "progress"]
    assert lines[1].split() == ["notes", "text", "0", "-", "0", "0", "-"]

    assert main(["info", "notes", "--target", addr]) == 0
    out = capsys.readouterr().out
    assert "contamination=0.05" in out and "default_k=3" in out and "seed=7" in out
    assert "schedule: after 500 changes" in out
    assert "served model: none yet" in out and "last run: none" in out

    data = _wordnet_jsonl(tmp_path / "notes.jsonl", 40)
    assert main(["ingest", str(data), "-c", "notes", "--metadata-fields", "category", "--server", addr]) == 0
    assert "ingested 40 rows into notes" in capsys.readouterr().out

    assert main(["cluster", "notes", "--k-range", "2", "4", "--target", addr]) == 0
    out = capsys.readouterr().out
    run = c.get_collection("notes").last_run
    assert f"run {run.run_id}: model v1, k={run.k}, 40 points labelled" in out
    # The rank vote behind k: one row per candidate, the chosen one starred, with the run's numbers.
    rows = {int(m.group(2)): m for m in re.finditer(
        r"^(\*| ) +(\d+) +(-?[\d.]+) +([\d.]+) +([\d.]+) +(\S+) +(yes)? +([\d.]+)$", out, re.M)}
    assert sorted(rows) == [2, 3, 4]
    for s in run.k_scores:
        assert (rows[s.k].group(1) == "*") == s.chosen
        assert float(rows[s.k].group(3)) == pytest.approx(s.silhouette, abs=1e-4)
        assert float(rows[s.k].group(8)) == pytest.approx(s.mean_rank, abs=0.01)
    assert [s.k for s in run.k_scores if s.chosen] == [run.k]
    assert "silhouette" in out and "davies-bouldin" in out and "calinski-harabasz" in out and "inertia" in out
    # The clusters, by size, as the server lists them.
    table = out[out.index("cluster     size"):].splitlines()[1:]
    listed = [tuple(line.split()[:4]) for line in table if line.strip()[:1].isdigit()]
    served = sorted(c.list_clusters("notes").clusters, key=lambda cl: (-cl.size, cl.cluster_id))
    assert [(int(a), int(b), int(d)) for a, b, _, d in listed] == [(cl.cluster_id, cl.size, cl.anomaly_count)
                                                                   for cl in served]
    assert sum(int(row[1]) for row in listed) == 40

    assert main(["info", "notes", "--target", addr]) == 0
    out = capsys.readouterr().out
    assert f"served model: v1, k={run.k}" in out and "points: 40" in out
    assert f"last run: {run.run_id} succeeded (manual)" in out

    # Not a terminal: refused without --yes, nothing deleted.
    monkeypatch.setattr(sys, "stdin", io.StringIO("y\n"))
    assert main(["delete", "notes", "--target", addr]) == 2
    err = capsys.readouterr().err
    assert "stdin is not a terminal" in err and "--yes" in err
    assert c.get_collection("notes").point_count == 40
    assert main(["delete", "notes", "--yes", "--target", addr]) == 0
    assert "deleted collection 'notes' (40 points)" in capsys.readouterr().out
    assert main(["collections", "--target", addr]) == 0
    assert "no collections" in capsys.readouterr().out


def test_delete_asks_on_a_terminal(running, capsys, monkeypatch) -> None:
    addr = running.server.address
    running.client.create_collection("keep", input_kind="vector", vector_dim=2)
    monkeypatch.setattr(sys, "stdin", _Terminal("n\n"))
    assert main(["delete", "keep", "--target", addr]) == 1
    err = capsys.readouterr().err
    assert "type its name or y to confirm" in err and "not deleted" in err
    monkeypatch.setattr(sys, "stdin", _Terminal(""))  # EOF: no
    assert main(["delete", "keep", "--target", addr]) == 1
    assert [c.name for c in running.client.list_collections()] == ["keep"]
    monkeypatch.setattr(sys, "stdin", _Terminal("keep\n"))  # the name confirms
    assert main(["delete", "keep", "--target", addr]) == 0
    assert running.client.list_collections() == []
    capsys.readouterr()
    assert main(["delete", "keep", "--yes", "--target", addr]) == 1
    assert capsys.readouterr().err.startswith("embcluster: NOT_FOUND: ")


def test_delete_refusal_message_without_a_terminal(running, capsys, monkeypatch) -> None:
    running.client.create_collection("v", input_kind="vector", vector_dim=2)
    monkeypatch.setattr(sys, "stdin", io.StringIO("v\n"))  # piped: even the right answer is not asked for
    assert main(["delete", "v", "--server", running.server.address]) == 2
    err = capsys.readouterr().err
    assert "not deleting 'v': stdin is not a terminal" in err and "pass --yes" in err
    assert running.client.get_collection("v").name == "v"


def test_create_options_event_schema_and_errors(running, tmp_path, capsys) -> None:
    addr = running.server.address
    c = running.client
    schema = tmp_path / "schema.json"
    schema.write_text(json.dumps([{"name": "amount", "type": "numeric", "log": True},
                                  {"name": "merchant", "type": "categorical"}]))
    assert main(["create", "tx", "--kind", "event", "--distance", "euclid", "--event-schema", str(schema),
                 "--target", addr]) == 0
    got = c.get_collection("tx")
    assert [f.name for f in got.event_schema.fields] == ["amount", "merchant"] and got.event_schema.fields[0].log
    capsys.readouterr()
    assert main(["info", "tx", "--target", addr]) == 0
    assert "event schema: amount (numeric), merchant (categorical)" in capsys.readouterr().out
    assert main(["create", "vec", "--kind", "vector", "--dim", "8", "--distance", "euclid", "--every", "3600",
                 "--schedule-k", "4", "--index-m", "32", "--index-ef-construct", "200", "--quantization", "int8",
                 "--target", addr]) == 0
    got = c.get_collection("vec")
    assert got.dim == 8 and got.settings.schedule.interval_s == 3600 and got.settings.schedule.k == 4
    assert (got.vector_index.m, got.vector_index.ef_construct, got.vector_index.ef,
            got.vector_index.quantization) == (32, 200, 128, "int8")  # ef: the server's default
    capsys.readouterr()
    assert main(["info", "vec", "--target", addr]) == 0
    assert ("vector index: m=32 ef_construct=200 ef=128 min_points=20000 quantization=int8; 0 of 0 points indexed"
            in capsys.readouterr().out)
    assert main(["create", "badvec", "--kind", "vector", "--dim", "8", "--index-m", "2", "--target", addr]) == 1
    assert re.fullmatch(r"embcluster: INVALID_ARGUMENT: vector_index\.m must be .*got 2\n", capsys.readouterr().err)

    # Each error: one line "embcluster: CODE: message" on stderr, non-zero exit.
    assert main(["create", "vec", "--kind", "vector", "--dim", "8", "--target", addr]) == 1
    assert re.fullmatch(r"embcluster: ALREADY_EXISTS: .*'vec'.*\n", capsys.readouterr().err)
    assert main(["create", "novec", "--kind", "vector", "--target", addr]) == 1
    assert capsys.readouterr().err.startswith("embcluster: INVALID_ARGUMENT: ")
    assert main(["create", "ev", "--kind", "event", "--target", addr]) == 1  # no schema
    assert capsys.readouterr().err.startswith("embcluster: INVALID_ARGUMENT: ")
    assert main(["info", "nope", "--target", addr]) == 1
    assert capsys.readouterr().err.startswith("embcluster: NOT_FOUND: ")
    bad = tmp_path / "bad.json"
    bad.write_text("[{\"name\": \"x\", \"type\": \"money\"}]")
    assert main(["create", "ev", "--kind", "event", "--event-schema", str(bad), "--target", addr]) == 2
    assert "type must be one of" in capsys.readouterr().err
    bad.write_text("{not json")
    assert main(["create", "ev", "--kind", "event", "--event-schema", str(bad), "--target", addr]) == 2
    assert "invalid JSON" in capsys.readouterr().err
    assert main(["create", "ev", "--kind", "event", "--event-schema", str(tmp_path / "missing.json"),
                 "--target", addr]) == 1
    assert "No such file" in capsys.readouterr().err
    assert main(["collections", "--api-key-file", str(tmp_path / "nokey"), "--target", addr]) == 1
    assert "No such file" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # argparse: a negative dimension never reaches the server
        main(["create", "neg", "--kind", "vector", "--dim", "-3", "--target", addr])
    assert "must be >= 1, got -3" in capsys.readouterr().err
    assert sorted(x.name for x in c.list_collections()) == ["tx", "vec"]


def test_every_client_command_takes_target_server_and_the_env_default(running, tmp_path, capsys, monkeypatch) -> None:
    addr = running.server.address
    running.client.create_collection("v", input_kind="vector", vector_dim=2)
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    monkeypatch.setenv("EMBCLUSTER_TARGET", addr)
    assert main(["collections"]) == 0 and re.search(r"^v +vector", capsys.readouterr().out, re.M)
    assert main(["info", "v"]) == 0
    assert main(["health"]) == 0
    capsys.readouterr()
    monkeypatch.setenv("EMBCLUSTER_TARGET", "127.0.0.1:1")  # a command that ignored its flag could not connect
    for flag in ("--target", "--server"):
        for argv in (["collections"], ["info", "v"], ["health"], ["cluster", "nope", "-k", "2"],
                     ["ingest", str(tmp_path / "x.jsonl"), "-c", "v"], ["delete", "nope", "--yes"],
                     ["export", "nope", "x.tar"], ["import", "x.tar"], ["create", "v"], ["points", "v"],
                     ["clusters", "v"], ["members", "v", "1"]):
            code = main([*argv, flag, addr])
            err = capsys.readouterr().err
            assert "cannot reach" not in err, (argv, flag, err)  # it talked to this server
            assert code == (0 if argv[0] in ("collections", "info", "health", "points") else 1), (argv, err)


def test_an_unreachable_server_is_one_line_without_a_traceback(tmp_path) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop("EMBCLUSTER_TARGET", None)
    proc = subprocess.run([sys.executable, "-m", "embcluster.cli", "collections", "--target", "127.0.0.1:1"],
                          capture_output=True, text=True, timeout=120, env=env, stdin=subprocess.DEVNULL)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    assert proc.stderr.startswith("embcluster: cannot reach a server at 127.0.0.1:1 (UNAVAILABLE")
    assert "embcluster serve" in proc.stderr


def test_collections_and_info_show_the_run_in_progress(running, capsys) -> None:
    addr = running.server.address
    c = running.client
    c.create_collection("busy", input_kind="vector", vector_dim=2)
    gate = threading.Event()

    def job(ctx) -> None:  # type: ignore[no-untyped-def]
        ctx.progress("fitting", 0.4)
        gate.wait(30)

    started = running.service.runs.start("busy", RunRequest(k=2), job)
    try:
        for _ in range(100):
            if c.get_collection("busy").active_run.phase == "fitting":
                break
            threading.Event().wait(0.05)
        got = c.get_collection("busy")
        assert got.active_run.run_id == started.run_id and not got.HasField("last_run")
        assert main(["collections", "--target", addr]) == 0
        assert re.search(r"^busy +vector +0 +- +0 +0 +running fitting 40%$", capsys.readouterr().out, re.M)
        assert main(["info", "busy", "--target", addr]) == 0
        assert f"run in progress: {started.run_id} running (fitting, 40%, manual)" in capsys.readouterr().out
    finally:
        gate.set()
        running.service.runs.wait("busy", timeout=30)
    got = c.get_collection("busy")
    assert not got.HasField("active_run") and got.last_run.run_id == started.run_id
    assert [x.last_run.run_id for x in c.list_collections()] == [started.run_id]


# ------------------------------------------------------------------------------------------ demo


def test_demo_refuses_existing_collections_and_never_touches_another_kinds(running, capsys) -> None:
    addr = running.server.address
    c = running.client
    c.create_collection("demo-wordnet", input_kind="vector", vector_dim=2)  # the text demo's
    c.create_collection("demo-loans-users", input_kind="vector", vector_dim=2)
    assert main(["demo", "--kind", "event", "--target", addr]) == 1
    err = capsys.readouterr().err
    assert "'demo-loans-users' already exists" in err and "--replace" in err
    assert sorted(x.name for x in c.list_collections()) == ["demo-loans-users", "demo-wordnet"]  # nothing deleted


def test_text_demo_against_a_server_replace_and_plain_progress(running, capsys) -> None:
    addr = running.server.address
    c = running.client
    c.create_collection("demo-icons", input_kind="vector", vector_dim=2)  # another demo's collection
    assert main(["demo", "--target", addr, "-n", "150", "-k", "3"]) == 0  # 150: contamination 0.01 flags some
    out = capsys.readouterr()
    assert "\r" not in out.out and "\r" not in out.err  # piped: plain progress lines, no redraws
    assert "ingest demo-wordnet: 150/150 items 100.0%" in out.err and "ingested 150 WordNet definitions" in out.out
    assert "ingest demo-wordnet" not in out.out  # progress goes to stderr only
    ids = re.findall(r"^  score +[\d.]+ +cluster +\d+ +(\S+) \(", out.out, re.M)
    assert ids and all(c.get_point("demo-wordnet", id=i).external_id == i for i in ids)
    assert main(["demo", "--target", addr, "-n", "30", "-k", "2"]) == 1
    assert "'demo-wordnet' already exists" in capsys.readouterr().err
    assert c.get_collection("demo-wordnet").point_count == 150
    assert main(["demo", "--target", addr, "-n", "30", "-k", "2", "--replace"]) == 0
    assert "replacing collection 'demo-wordnet' (--replace)" in capsys.readouterr().err
    assert c.get_collection("demo-wordnet").point_count == 30
    assert c.get_collection("demo-icons").dim == 2  # untouched


def test_image_demo_prints_ids_that_get_point_finds(running, capsys) -> None:
    addr = running.server.address
    assert main(["demo", "--kind", "image_metadata", "--target", addr, "-n", "150", "-k", "3"]) == 0
    out = capsys.readouterr().out
    ids = re.findall(r"^  score +[\d.]+ +cluster +\d+ +(\S+): ", out, re.M)
    assert ids and all(i.startswith("ph-") for i in ids)
    assert all(running.client.get_point("demo-icons", id=i).external_id == i for i in ids)


def _demo_dirs(tmp: Path) -> list[Path]:
    return sorted(tmp.glob("embcluster-demo-*"))


def test_embedded_demo_removes_its_data_directory(tmp_path, capsys, monkeypatch) -> None:
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(tmp))
    monkeypatch.setenv("EMBCLUSTER_TARGET", "127.0.0.1:1")  # not used by demo: only --target is
    assert main(["demo", "-n", "30", "-k", "2"]) == 0
    out = capsys.readouterr()
    assert "started an embedded server on 127.0.0.1:" in out.err and "data kept" not in out.err
    assert "model v1: k=2, 30 points labelled" in out.out and "\r" not in out.out + out.err
    assert _demo_dirs(tmp) == []


def test_embedded_demo_ctrl_c_exits_130_and_cleans_up(tmp_path, capsys, monkeypatch) -> None:
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(tmp))
    seen: list[Path] = []

    def interrupted(*_args: object) -> int:
        seen.extend(_demo_dirs(tmp))  # the data directory exists while the demo runs
        raise KeyboardInterrupt

    monkeypatch.setattr(cli_demo, "_items_demo", interrupted)
    assert main(["demo", "-n", "10"]) == 130
    err = capsys.readouterr().err
    assert "interrupted" in err and "Traceback" not in err
    assert len(seen) == 1 and _demo_dirs(tmp) == []
    keep = tmp_path / "keep"
    assert main(["demo", "-n", "10", "--keep-data", str(keep)]) == 130
    assert f"data kept in {keep}" in capsys.readouterr().err
    assert any(keep.iterdir())  # kept
    assert main(["demo", "--keep-data", str(keep), "--target", "127.0.0.1:1"]) == 2
