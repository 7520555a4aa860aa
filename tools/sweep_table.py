#!/usr/bin/env python3
"""Baseline vs adapted 2AFC per net and context from sweep results (results.jsonl), as a Markdown table: the
adapted score is the mean over seeds (with the seeds' range), one row per adapted variant (scalars, net) when
the directories hold both (a scalars sweep and a `--variant net` sweep: the paper's Table 3). Used for
RESULTS.md.

Usage: python3 tools/sweep_table.py METHOD CONTEXTS DIR [DIR ...]   e.g. tools/sweep_table.py spatial 0,1,2,3 results/sweep
"""
import json
import sys
from collections import defaultdict


def main():
    method, contexts, dirs = sys.argv[1], sys.argv[2].split(","), sys.argv[3:]
    lines = [json.loads(l) for d in dirs for l in open(f"{d}/results.jsonl") if l.strip()]
    lines = [l for l in lines if l["method"] == method and l["ranking"] in contexts]
    tests = list(lines[0]["tests"].keys())
    ind = lines[0]["in_distribution"]
    base, adapted = {}, defaultdict(list)
    for l in lines:
        key = (l["net"], l["ranking"])
        scores = [l["tests"][t]["two_afc"] for t in tests]
        if l["kind"] == "baseline":
            base[key] = scores
        else:
            adapted[key + (l.get("variant", "scalars"),)].append(scores)
    head = " | ".join(f"{t} baseline | {t} adapted" for t in tests)
    print(f"| net | context | variant | {head} | seeds |")
    print("|---|---|---|" + "---|---|" * len(tests) + "---|")
    for key in sorted(adapted, key=lambda k: (k[0], int(k[1]), k[2] != "scalars")):
        if key[:2] not in base:
            continue
        runs = adapted[key]
        cols = []
        for i, t in enumerate(tests):
            vals = [r[i] for r in runs]
            mean = sum(vals) / len(vals)
            b = base[key[:2]][i]
            a = f"**{mean:.3f}**" if mean > b else f"{mean:.3f}"  # bold where adapting helped
            cols.append(f"{b:.3f} | {a} ({min(vals):.3f}–{max(vals):.3f})")
        print(f"| {key[0]} | {key[1]} | {key[2]} | {' | '.join(cols)} | {len(runs)} |")
    print(f"\nIn-distribution: `{ind}`; the others are out of distribution. Bold: adapted above baseline.")


if __name__ == "__main__":
    main()
