"""GO calibration time (Wang et al. 2021, App. A): a 4 × 32 tanh MLP, 5,000 Adam steps.

The paper reports roughly 7 s on one NVIDIA RTX A6000 (JAX, batches of 256). We time
``deepbasis.init.go_`` on the same network with fixed and with redrawn directions, side by side,
on 2^16 inputs uniform in [−1, 1]², float32 (JAX's default) unless told otherwise. Never fails on
timing: it reports.

    python benchmarks/bench_go.py                 # 5,000 steps, CPU, one thread
    python benchmarks/bench_go.py --device cuda   # on a GPU
    python benchmarks/bench_go.py --steps 500     # quick look
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import torch

from deepbasis import MLP, init

PAPER_SECONDS = 7.0  # App. A: 4 hidden layers × 32, batch 256, 5,000 steps, RTX A6000
DTYPES = {"float32": torch.float32, "float64": torch.float64}


def time_go(directions: str, *, width: int, depth: int, steps: int, batch: int, dtype,
            device: str, seed: int = 0) -> dict:
    gen = torch.Generator().manual_seed(seed)
    x = (torch.rand(2**16, 2, generator=gen, dtype=torch.float64) * 2 - 1).to(dtype)
    model = MLP(2, width, depth, activation="tanh", dtype=dtype, device=device)
    init.go_(model, x, steps=5, batch_size=batch, directions=directions, generator=seed)  # warm
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    history = init.go_(model, x, steps=steps, batch_size=batch, directions=directions,
                       generator=seed)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    return {"directions": directions, "seconds": seconds, "ms_per_step": 1e3 * seconds / steps,
            "start_msc": history.mean_squared_cosine[0],
            "final_msc": history.mean_squared_cosine[-1]}


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=5000)
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="float32")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", help="write the measurements to this file")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"GO calibration: {args.depth} × {args.width} tanh MLP, {args.steps} Adam steps, batch "
          f"{args.batch} of 2^16 inputs, {args.dtype}, {args.device}, threads={args.threads}",
          flush=True)
    results = [time_go(d, width=args.width, depth=args.depth, steps=args.steps, batch=args.batch,
                       dtype=DTYPES[args.dtype], device=args.device)
               for d in ("fixed", "redrawn")]
    scale = 5000 / args.steps
    for r in results:
        print(f"  {r['directions']:8s} {r['seconds']:7.2f} s  ({r['ms_per_step']:.3f} ms/step; "
              f"{r['seconds'] * scale:6.2f} s per 5,000 steps = "
              f"{r['seconds'] * scale / PAPER_SECONDS:.2f} × the paper's {PAPER_SECONDS:.0f} s)  "
              f"mean cos² {r['start_msc']:.3f} → {r['final_msc']:.3f}", flush=True)
    print(f"  redrawn / fixed: {results[1]['seconds'] / results[0]['seconds']:.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
