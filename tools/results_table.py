#!/usr/bin/env python3
"""Turns the JSON lines of tools/evidence_issue4.sh into a Markdown table: baseline vs adapted 2AFC per net and
context, in-distribution (CIFAR-10 test) and out of distribution (STL-10), with means.

Usage: python3 tools/results_table.py results/issue4_lavapipe.jsonl
"""
import json
import sys
from collections import defaultdict


def main():
    rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
    cells = defaultdict(dict)
    for r in rows:
        cells[(r["net"], r["ranking"])][r["metric"]] = r
    print("| net | context | CIFAR-10 baseline | CIFAR-10 adapted | STL-10 baseline | STL-10 adapted | training time |")
    print("|---|---|---|---|---|---|---|")
    sums = defaultdict(lambda: defaultdict(list))
    for (net, ctx), m in sorted(cells.items()):
        if "baseline" not in m or "adapted" not in m:
            continue
        b, a = m["baseline"], m["adapted"]
        print(f"| {net} | {ctx} | {b['cifar10_test_2afc']:.3f} | **{a['cifar10_test_2afc']:.3f}** | "
              f"{b['stl10_2afc']:.3f} | **{a['stl10_2afc']:.3f}** | {a['train_seconds']} s |")
        for k in ["cifar10_test_2afc", "stl10_2afc"]:
            sums[net]["b_" + k].append(b[k])
            sums[net]["a_" + k].append(a[k])
    for net, s in sums.items():
        n = len(s["b_cifar10_test_2afc"])
        mean = lambda k: sum(s[k]) / n
        print(f"| {net} | mean of {n} | {mean('b_cifar10_test_2afc'):.3f} | **{mean('a_cifar10_test_2afc'):.3f}** | "
              f"{mean('b_stl10_2afc'):.3f} | **{mean('a_stl10_2afc'):.3f}** | |")


if __name__ == "__main__":
    main()
