#!/usr/bin/env python3
"""PyTorch's matrix products on the shapes and layouts that crates/attention/benches/matmul.rs
timed (a MiniLM-L6 fine-tuning step's linear layers; its JSON lines name them), timed the same
way: GFLOP/s, the median of 7 timings of 20 products each, after 5. One JSON line per product.

    python3 benches/matmul_torch.py --threads 2 --products OUTPUT_OF_THE_RUST_BENCH
"""
import argparse
import json
import statistics
import time

import torch



def operand(rows, cols, transposed):
    """[rows, cols], or the transposed view of a [cols, rows] tensor (as autograd makes them)."""
    return torch.rand(cols, rows).t() if transposed else torch.rand(rows, cols)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--products", required=True, help="JSON lines of the Rust bench")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    products = []
    for line in open(args.products):
        r = json.loads(line)
        product = (r["m"], r["k"], r["n"], r["layout"])
        products += [product] if product not in products else []
    for m, k, n, layout in products:
        lhs, rhs = operand(m, k, layout == "xᵀ·dy"), operand(k, n, layout == "dy·Wᵀ")
        for _ in range(5):
            lhs @ rhs
        rates = []
        for _ in range(7):
            start = time.perf_counter()
            for _ in range(20):
                lhs @ rhs
            rates.append(20 * 2 * m * k * n / (time.perf_counter() - start) / 1e9)
        print(json.dumps({"program": f"torch {torch.__version__}", "threads": args.threads, "m": m, "k": k,
                          "n": n, "layout": layout, "gflops": round(statistics.median(rates), 1)},
                         ensure_ascii=False))


if __name__ == "__main__":
    main()
