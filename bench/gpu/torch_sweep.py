"""The PyTorch side of bench/gpu.sh part (b): the same short burgers jobs, one after another.

Each job is the reference model and step of bench/step_time_torch.py (nested autograd, one
gradient per task, Adam with a constant learning rate), `--iters` steps, evaluated on the
benchmark's test grid every `--eval-every` steps and at the end (as modsync does). The test grid
and its reference solution come from `modsync reference --pde burgers --out FILE`.

Prints one JSON line per finished job (flushed, so a time-boxed run still reports what it did)
and a last line {"total_wall_s": ...}. Uses only torch and the standard library.

Usage: python torch_sweep.py --reference ref.csv --widths 50 128 --seeds 0 1 --depth 5
                             --iters 600 --eval-every 200 --device cuda
"""

import argparse
import csv
import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from step_time_torch import mlp, step  # noqa: E402


def load_reference(path, device):
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    header, data = rows[0], rows[1:]
    assert header[-1] == "u", header
    pts = torch.tensor([[float(v) for v in r[:-1]] for r in data], dtype=torch.float32)
    u = torch.tensor([float(r[-1]) for r in data], dtype=torch.float32)
    return pts.to(device), u.to(device)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reference", required=True)
    ap.add_argument("--widths", type=int, nargs="+", required=True)
    ap.add_argument("--seeds", type=int, nargs="+", required=True)
    ap.add_argument("--depth", type=int, default=5)
    ap.add_argument("--iters", type=int, default=600)
    ap.add_argument("--eval-every", type=int, default=200)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--threads", type=int, default=0, help="0: PyTorch's default")
    args = ap.parse_args()
    t_start = time.perf_counter()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    pts, u_ref = load_reference(args.reference, dev)
    ref_norm = torch.linalg.vector_norm(u_ref)

    def rel_l2(net):
        with torch.no_grad():
            return (torch.linalg.vector_norm(net(pts).squeeze(1) - u_ref) / ref_norm).item()

    for width in args.widths:
        for seed in args.seeds:
            t0 = time.perf_counter()
            torch.manual_seed(seed)
            net = mlp(width, args.depth, dev)
            params = list(net.parameters())
            opt = torch.optim.Adam(params, lr=args.lr)
            errs = [rel_l2(net)]
            for i in range(1, args.iters + 1):
                step(net, opt, params, dev)
                if i % args.eval_every == 0 or i == args.iters:
                    errs.append(rel_l2(net))
            job = {
                "width": width,
                "seed": seed,
                "iters": args.iters,
                "wall_s": time.perf_counter() - t0,
                "elapsed_s": time.perf_counter() - t_start,
                "rel_l2_best": min(errs),
                "rel_l2_last": errs[-1],
            }
            print(json.dumps(job), flush=True)
    print(json.dumps({"total_wall_s": time.perf_counter() - t_start}), flush=True)


if __name__ == "__main__":
    main()
