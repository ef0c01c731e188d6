"""Batch jobs on disk: the input's two passes, results files read back, torn lines cut,
corrupt files refused, locks, fsync cadence, and memory that does not grow with the input."""

from __future__ import annotations

import json
import os
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
from _helpers import MODEL

import wandb_inference as wi
from wandb_inference._batch._files import ResultFiles, read_done
from wandb_inference._batch._input import iter_requests, scan_input

CHAT = "/v1/chat/completions"


def line(custom_id: str, **body: Any) -> str:
    body.setdefault("model", MODEL)
    body.setdefault("messages", [{"role": "user", "content": f"about {custom_id}"}])
    return json.dumps({"custom_id": custom_id, "method": "POST", "url": CHAT, "body": body}) + "\n"


def result_line(custom_id: str) -> str:
    record = {
        "id": "batch_req_" + "0" * 32,
        "custom_id": custom_id,
        "response": {"status_code": 200, "request_id": "r", "body": {"ok": True}},
        "error": None,
    }
    return json.dumps(record, separators=(",", ":")) + "\n"


def test_the_first_pass_finds_every_bad_line_and_counts_the_rest(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text(
        line("a")
        + "\n   \n"  # blank lines are skipped, not errors
        + line("b", temperature=9)
        + "oops\n"
        + line("a")
        + line("c")
        + line("d")
        + json.dumps({"custom_id": "e", "url": "/v1/embeddings", "body": {"model": "BAAI/bge-m3", "input": "x"}})
        + "\n"
    )
    scan = scan_input(source, model=None, done={"c", "zz"})
    assert scan.lines == 7
    assert scan.problems == (
        (4, "b", "temperature must be at most 2 (got 9)"),
        (5, None, "not a JSON object (Expecting value: line 1 column 1 (char 0))"),
        (6, "a", "duplicate custom_id 'a' (first on line 1)"),
    )
    assert scan.bad_lines == {4, 5, 6} and scan.problem_count == 3
    assert (scan.to_send, scan.done, scan.foreign_done) == (3, 1, 1)  # a, d, e; c done; zz unknown
    assert scan.endpoints == {CHAT: 2, "/v1/embeddings": 1}
    assert scan.models == {MODEL: 2, "BAAI/bge-m3": 1}
    sent = list(iter_requests(source, model=None, done={"c"}, skip=scan.bad_lines))
    assert [r.custom_id for r in sent if isinstance(r, wi.BatchRequest)] == ["a", "d", "e"]


def test_a_missing_input_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(wi.BatchFileError, match="cannot read the input file"):
        scan_input(tmp_path / "nope.jsonl", model=None, done=set())


@pytest.mark.parametrize(
    "tail",
    [
        result_line("z")[:-1],  # the whole line but its newline
        result_line("z")[:30],  # cut mid-line
        "\x00" * 4096,  # zeros after a power loss
        result_line("z")[:30] + "\x00" * 10,  # both
        "\x00" * 10 + "\n" + "\x00" * 10,  # zeros over several lines
    ],
)
def test_a_torn_end_is_cut_off_and_its_id_is_not_done(tmp_path: Path, tail: str) -> None:
    out = tmp_path / "out.jsonl"
    good = result_line("a") + result_line("b")
    out.write_bytes(good.encode() + tail.encode())
    files = ResultFiles(out, tmp_path / "err.jsonl")
    try:
        assert files.done == {"a", "b"}
        assert files.output_state.repaired_bytes == len(tail.encode())
    finally:
        files.close()
    assert out.read_text() == good


def test_a_dry_run_reports_a_torn_end_without_cutting_it(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    out.write_text(result_line("a") + '{"id":"batch_re')
    files = ResultFiles(out, tmp_path / "err.jsonl", dry_run=True)
    assert files.output_state.repaired_bytes == len('{"id":"batch_re')
    assert out.read_text().endswith('{"id":"batch_re') and not (tmp_path / "err.jsonl").exists()


def test_a_corrupt_line_before_good_ones_is_refused_with_its_number(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    out.write_text(result_line("a") + "garbage\n" + result_line("b"))
    with pytest.raises(wi.BatchFileError, match="line 2 is not a batch result"):
        ResultFiles(out, tmp_path / "err.jsonl")
    assert out.read_text().count("\n") == 3  # left as it was


@pytest.mark.parametrize("tail", ['{"custom_id": "q", "body": {}}\n', "some notes\n", result_line("z")[:30] + "\n"])
def test_a_whole_line_that_is_not_a_result_is_refused_not_cut(tmp_path: Path, tail: str) -> None:
    """Not a torn write (those have no newline): another file, or a corrupt one. Cutting it
    off could destroy a file that is not this job's output at all."""
    out = tmp_path / "out.jsonl"
    out.write_text(result_line("a") + tail)
    with pytest.raises(wi.BatchFileError, match="line 2 is a whole line but not a batch result"):
        ResultFiles(out, tmp_path / "err.jsonl")
    assert out.read_text() == result_line("a") + tail
    other = tmp_path / "other.jsonl"
    other.write_text(tail * 3)  # not a results file at all
    with pytest.raises(wi.BatchFileError, match="line 1 is"):
        ResultFiles(other, tmp_path / "err.jsonl")
    assert other.read_text() == tail * 3


def test_results_written_by_other_tools_are_read_too(tmp_path: Path) -> None:
    out = tmp_path / "openai.jsonl"
    out.write_text(json.dumps({"custom_id": "x", "response": None, "error": {"code": "c", "message": "m"}}) + "\n")
    done: set[str] = set()
    read_done(out, None, done)
    assert done == {"x"}


def test_two_jobs_cannot_write_the_same_output(tmp_path: Path) -> None:
    first = ResultFiles(tmp_path / "out.jsonl", tmp_path / "err.jsonl")
    try:
        with pytest.raises(wi.BatchFileError, match="another batch job is writing"):
            ResultFiles(tmp_path / "out.jsonl", tmp_path / "err2.jsonl")
    finally:
        first.close()
    ResultFiles(tmp_path / "out.jsonl", tmp_path / "err.jsonl").close()  # free again


def test_output_and_errors_must_be_two_files(tmp_path: Path) -> None:
    with pytest.raises(wi.BatchFileError, match="must differ"):
        ResultFiles(tmp_path / "out.jsonl", tmp_path / "out.jsonl")


def test_retry_errors_moves_the_errors_file_aside(tmp_path: Path) -> None:
    errors = tmp_path / "err.jsonl"
    errors.write_text(result_line("failed"))
    files = ResultFiles(tmp_path / "out.jsonl", errors, retry_errors=True)
    try:
        assert files.done == set() and files.retried
        assert (tmp_path / "err.jsonl.retried").read_text() == result_line("failed")
        assert errors.read_text() == ""
    finally:
        files.close()


def test_lines_are_fsynced_at_most_a_second_after_they_are_written(tmp_path: Path) -> None:
    now = [100.0]
    synced: list[int] = []
    files = ResultFiles(tmp_path / "o.jsonl", tmp_path / "e.jsonl", fsync=synced.append, clock=lambda: now[0])
    files.write({"custom_id": "a"}, ok=True)
    files.sync()
    assert synced == [] and not files.due()  # written at t=100, the last sync at t=100
    now[0] = 101.0
    assert files.due()
    files.sync()
    assert len(synced) == 1 and not files.due()
    files.sync()  # nothing new: no fsync
    files.write({"custom_id": "b"}, ok=False)
    files.close()  # close syncs what is left
    assert len(synced) == 2
    assert (tmp_path / "o.jsonl").read_text() == '{"custom_id":"a"}\n'


def test_checking_an_input_does_not_load_it(tmp_path: Path) -> None:
    """The input is streamed: a 20 MB file is checked with a few MB of Python memory at most."""
    source = tmp_path / "big.jsonl"
    text = "x" * 50_000
    with source.open("w") as handle:
        for i in range(400):
            handle.write(line(f"r{i}", messages=[{"role": "user", "content": text}]))
    assert source.stat().st_size > 20_000_000
    tracemalloc.start()
    try:
        check = wi.Client(api_key="k").batch.check(source, tmp_path / "out.jsonl")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert check.to_send == 400 and check.ok
    assert peak < 5_000_000, peak  # a few lines at a time (and the modules it loads), not 20 MB
    assert not (tmp_path / "out.jsonl").exists()  # a check creates nothing


def test_default_errors_path_sits_beside_the_output(tmp_path: Path) -> None:
    from wandb_inference._batch._job import default_errors_path

    assert default_errors_path(tmp_path / "out.jsonl") == tmp_path / "out.errors.jsonl"
    assert default_errors_path(tmp_path / "out") == tmp_path / "out.errors.jsonl"


def test_a_results_file_that_is_the_input_is_refused(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text(line("a"))
    with pytest.raises(wi.BatchFileError, match="cannot also be the output"):
        wi.Client(api_key="k").batch.run(source, source)
    assert os.path.getsize(source) == len(line("a"))


def test_a_repeated_done_line_is_still_a_duplicate_and_foreign_results_are_counted(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text(line("a") + line("b") + line("a") + line("b", temperature=9) + line("c"))
    scan = scan_input(source, model=None, done={"a", "x", "y"})
    assert [(n, cid) for n, cid, _ in scan.problems] == [(3, "a"), (4, "b")]
    assert "first on line 1" in scan.problems[0][2]
    assert "temperature" in scan.problems[1][2]  # invalid and repeated: its own problem is kept
    assert (scan.done, scan.to_send, scan.foreign_done) == (1, 2, 2)


def test_the_custom_ids_of_a_long_input_cost_a_few_bytes_each(tmp_path: Path) -> None:
    """Duplicates are found from 8-byte hashes (strings compared only for repeats): 20,000
    ids in well under the 3.3 MB a set of the strings alone takes."""
    source = tmp_path / "many.jsonl"
    with source.open("w") as handle:
        for i in range(20_000):
            handle.write(
                f'{{"custom_id":"id-{i:07d}","url":"{CHAT}","body":{{"model":"m","messages":[{{"role":"user","content":"x"}}]}}}}\n'
            )
        handle.write(f'{{"custom_id":"id-0000007","url":"{CHAT}","body":{{"model":"m","messages":[]}}}}\n')
    tracemalloc.start()
    try:
        scan = scan_input(source, model=None, done=set())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert scan.to_send == 20_000 and scan.problem_count == 1
    assert scan.problems[0][:2] == (20_001, "id-0000007")
    assert peak < 2_200_000, peak
