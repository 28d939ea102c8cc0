#!/usr/bin/env python3
"""PyTorch's side of `cargo bench --bench window`: a causal sliding window through
`F.scaled_dot_product_attention` with the window as a boolean mask (`sdpa-mask`), through
`flex_attention` with its block mask (`flex`, compiled with `torch.compile`; eager when
compiling fails, which is said in the output), and full attention (`sdpa-full`).

Same shapes as the Rust bench: batch 1, 8 heads of 64, f32, forward + backward (`train`) or
forward alone; each case in a child process so its peak resident memory (VmHWM) is its own.

    python3 benches/window_torch.py [--lens 1024,2048,4096] [--window 256] [--threads N] [--json out.json]
"""

import argparse
import json
import os
import subprocess
import sys
import time

BATCH, HEADS, D_HEAD = 1, 8, 64


def peak_rss_mib():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return None


def run_case(which, mode, length, window, threads):
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    train = mode == "train"
    q, k, v = (
        torch.randn(BATCH, HEADS, length, D_HEAD, requires_grad=train) for _ in range(3)
    )
    compiled = None
    if which == "sdpa-mask":
        i = torch.arange(length)
        allowed = (i[None, :] <= i[:, None]) & (i[:, None] - i[None, :] < window)
        op = lambda: F.scaled_dot_product_attention(q, k, v, attn_mask=allowed)
    elif which == "sdpa-full":
        op = lambda: F.scaled_dot_product_attention(q, k, v)
    elif which == "flex":
        from torch.nn.attention.flex_attention import create_block_mask, flex_attention

        def sliding(b, h, qi, kv):
            return (kv <= qi) & (qi - kv < window)

        blocks = create_block_mask(sliding, None, None, length, length, device="cpu")
        try:
            fn = torch.compile(flex_attention)
            fn(q, k, v, block_mask=blocks)
            compiled = True
        except Exception as error:  # noqa: BLE001 - reported, then eager
            print(f"torch.compile(flex_attention) failed: {error!r:.200}", file=sys.stderr)
            fn, compiled = flex_attention, False
        op = lambda: fn(q, k, v, block_mask=blocks)
    else:
        raise SystemExit(f"unknown implementation {which}")

    def step():
        out = op()
        if train:
            out.sum().backward()
            q.grad = k.grad = v.grad = None

    step()  # warm-up (and compilation)
    started, iters = time.perf_counter(), 0
    while iters < 3 or time.perf_counter() - started < 2.0:
        step()
        iters += 1
    ms = (time.perf_counter() - started) * 1000 / iters
    print(
        json.dumps(
            {
                "backend": "pytorch",
                "impl": which,
                "mode": mode,
                "len": length,
                "window": window,
                "batch": BATCH,
                "heads": HEADS,
                "d_head": D_HEAD,
                "threads": threads,
                "compiled": compiled,
                "torch": torch.__version__,
                "iters": iters,
                "ms_per_iter": ms,
                "peak_rss_mib": peak_rss_mib(),
            }
        )
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lens", default="1024,2048,4096")
    parser.add_argument("--window", type=int, default=256)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--json")
    parser.add_argument("--case", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        which, mode, length = args.case.split(":")
        run_case(which, mode, int(length), args.window, args.threads)
        return
    print(f"pytorch, batch {BATCH}, {HEADS} heads of {D_HEAD}, causal window {args.window}")
    print(f"{'len':>6} {'mode':>8} {'impl':>10} {'ms/iter':>12} {'peak RSS MiB':>14}")
    results = []
    for length in map(int, args.lens.split(",")):
        for mode in ["train", "forward"]:
            for which in ["flex", "sdpa-mask", "sdpa-full"]:
                child = subprocess.run(
                    [sys.executable, __file__, "--case", f"{which}:{mode}:{length}",
                     "--window", str(args.window), "--threads", str(args.threads)],
                    capture_output=True,
                    text=True,
                )
                try:
                    result = json.loads(child.stdout.strip().splitlines()[-1])
                except (IndexError, json.JSONDecodeError):
                    last = (child.stderr.strip().splitlines() or ["?"])[-1]
                    print(f"{length:>6} {mode:>8} {which:>10} failed: {last}")
                    continue
                note = "" if result["compiled"] is not False else "  (eager: compile failed)"
                print(
                    f"{length:>6} {mode:>8} {which:>10} {result['ms_per_iter']:>12.1f} "
                    f"{result['peak_rss_mib']:>14.0f}{note}"
                )
                results.append(result)
    if args.json:
        with open(args.json, "w") as out:
            json.dump(results, out, indent=2)
            out.write("\n")


if __name__ == "__main__":
    main()
