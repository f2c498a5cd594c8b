#!/usr/bin/env python3
"""Prints the throughput table of a benches/run.sh result file (JSON lines).

Lines are either `chord bench --json` objects {"model","mode","pp_tokens","pp_tok_s",
"tg_tokens","tg_tok_s"} (or {"model","mode","error"}), or llama-bench `-o jsonl`
objects (fields model_filename, n_prompt, n_gen, avg_ts), read as mode "llama.cpp".
"""
import json
import os
import sys

MODES = ["native", "component", "packed", "llama.cpp"]


def tests_of(rec):
    """(test name, tokens/s) pairs of one record."""
    if "avg_ts" in rec:
        n_p, n_g = rec.get("n_prompt", 0), rec.get("n_gen", 0)
        name = f"pp{n_p}" if n_g == 0 else f"tg{n_g}" if n_p == 0 else f"pp{n_p}+tg{n_g}"
        return [(name, rec["avg_ts"])]
    out = []
    if rec.get("pp_tok_s") is not None:
        out.append((f"pp{rec['pp_tokens']}", rec["pp_tok_s"]))
    if rec.get("tg_tok_s") is not None:
        out.append((f"tg{rec['tg_tokens']}", rec["tg_tok_s"]))
    return out


def main(path):
    table = {}  # (model, test) -> {mode: tok/s}
    errors = {}
    for line in open(path):
        line = line.strip()
        if not line.startswith("{"):
            continue
        rec = json.loads(line)
        if "avg_ts" in rec:
            model, mode = os.path.basename(rec.get("model_filename", "?")), "llama.cpp"
        else:
            model, mode = os.path.basename(rec["model"]), rec["mode"]
            # A packed component sits next to its model as MODEL.packed.wasm: one row.
            if model.endswith(".packed.wasm"):
                model = model[: -len(".packed.wasm")] + ".gguf"
        if "error" in rec:
            errors[(model, mode)] = rec["error"]
            continue
        for test, ts in tests_of(rec):
            table.setdefault((model, test), {})[mode] = ts

    def fmt(x):
        return f"{x:.1f}" if x is not None else "-"

    def ratio(a, b):
        return f"{a / b:.2f}x" if a is not None and b else "-"

    print("| model | test | " + " | ".join(MODES) + " | component/llama.cpp | component/native |")
    print("|---|---|" + "---:|" * (len(MODES) + 2))
    order = {"pp128": 0, "pp512": 1, "tg128": 2}
    for (model, test) in sorted(table, key=lambda k: (k[0], order.get(k[1], 9), k[1])):
        row = table[(model, test)]
        cells = [fmt(row.get(m)) for m in MODES]
        c = row.get("component")
        print(f"| {model} | {test} | " + " | ".join(cells)
              + f" | {ratio(c, row.get('llama.cpp'))} | {ratio(c, row.get('native'))} |")
    for (model, mode), err in sorted(errors.items()):
        print(f"\n{model} ({mode}) not measured: {err}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: report.py RESULTS.jsonl")
    main(sys.argv[1])
