#!/usr/bin/env python3
"""Writes the hostile inputs of the reliability review (issue #19) into a folder.

Each file is small on disk and asks a reader for far more memory or time than
its size: decompression bombs, very many distinct categories, one very long
line, very wide rows. `peak_memory.sh` runs the CLI on each and reports the
peak resident memory, so a limit that stops working shows up as a number.

    python3 benches/limits/inputs.py DIR
"""
import gzip
import json
import os
import sys
import zlib

ROUND = {
    "action": 1,
    "reward": 1.0,
    "propensity": 0.5,
    "target": [0.25, 0.25, 0.25, 0.25],
}


def decision(i, model, arm_id, context):
    """One decision-log line in the library's schema (see docs/decision-log.md);
    `arm_id` is 16 hexadecimal digits."""
    return {
        "schema_version": 1,
        "decision_id": f"00000000-0000-0000-0000-{i:012x}",
        "task_type": "summarize",
        "model": model,
        "context_fingerprint": "0000000000000000",
        "context": context,
        "eligible": [0, 1],
        "eligible_ids": [arm_id, "ffffffffffffffff"],
        "arm": 0,
        "arm_id": arm_id,
        "params": {"model": model, "temperature": 0.5, "top_p": 1.0, "max_tokens": 256,
                   "frequency_penalty": 0.0, "presence_penalty": 0.0},
        "propensity": 0.5,
        "propensity_estimated": False,
        "policy_kind": "fixed",
        "policy_version": 0,
        "cohort": "baseline",
        "phase": "shadow",
        "timestamp": "2026-11-23T00:00:00Z",
        "outcome": {"quality": 0.9, "latency_ms": 500.0, "prompt_tokens": 100,
                    "completion_tokens": 100, "cost_usd": 0.001, "success": True},
        "reward": 0.8,
        "reward_defaulted": False,
    }


def gzip_repeated(path, chunk, compressed_bytes):
    """A gzip stream of `chunk` repeated until it is `compressed_bytes` long."""
    comp = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = chunk * max(1, (1 << 20) // len(chunk))
    with open(path, "wb") as out:
        while out.tell() < compressed_bytes:
            out.write(comp.compress(block))
        out.write(comp.flush())


def main(folder):
    os.makedirs(folder, exist_ok=True)
    p = lambda name: os.path.join(folder, name)

    # 10 MB of gzip holding 10 GB of zeros: the report's loader.
    gzip_repeated(p("zeros.jsonl.gz"), b"\0" * 4096, 10 << 20)
    # 16 MB of gzip holding one valid OPE round, repeated: the OPE reader.
    gzip_repeated(p("rounds.jsonl.gz"), (json.dumps(ROUND) + "\n").encode(), 16 << 20)

    # 5,000 distinct models and 20,000 distinct arm ids: the report's attribution.
    with open(p("models.jsonl"), "w") as f:
        for i in range(8000):
            m = i % 5000
            f.write(json.dumps(decision(i, f"model-{m}", f"{m:016x}", [1.0, 0.0])) + "\n")
    with open(p("arms.jsonl"), "w") as f:
        for i in range(20000):
            f.write(json.dumps(decision(i, "m", f"{i:016x}", [1.0, 0.0])) + "\n")

    # One 200 MB line: an OPE round whose target has 25 million entries.
    n = 25_000_000
    with open(p("long-line.jsonl"), "w") as f:
        f.write('{"action": 0, "reward": 1.0, "propensity": 0.5, "target": [')
        f.write(",".join(["0.00000"] * n))
        f.write("]}\n")

    # 100 decisions of 20,000 context features: offline evaluation.
    with open(p("wide.jsonl"), "w") as f:
        for i in range(100):
            f.write(json.dumps(decision(i, "m", "000000000000000a", [0.5] * 20000)) + "\n")

    # 100 valid OPE rounds (for flags out of range).
    with open(p("rounds.jsonl"), "w") as f:
        for i in range(100):
            f.write(json.dumps(dict(ROUND, action=i % 4)) + "\n")

    # A CSV of a million columns, and 10 rows of 500 columns with label 4095.
    with open(p("million-columns.csv"), "w") as f:
        f.write(",".join(f"f{i}" for i in range(1_000_000)) + ",label\n")
        for label in (0, 1):
            f.write(",".join("0" for _ in range(1_000_000)) + f",{label}\n")
    with open(p("label-4095.csv"), "w") as f:
        f.write(",".join(f"f{i}" for i in range(500)) + ",label\n")
        for r in range(10):
            f.write(",".join("0.5" for _ in range(500)) + f",{4095 if r == 0 else r}\n")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: inputs.py DIR")
    main(sys.argv[1])
