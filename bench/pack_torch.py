"""PyTorch's strongest form of a PINN sweep on one device: a `torch.func` ensemble.

K `burgers` MLPs (as in step_time_torch.py) stacked with `stack_module_state`, run with
`vmap(functional_call)` on their own points `[K, n, 2]`; input derivatives by nested
`torch.autograd.grad(..., create_graph=True)` through the vmapped forward; per-network losses,
one `autograd.grad` per task for all K networks at once, their sum into `.grad`, one Adam over
the stacked parameters (elementwise, so per network). Prints `width K ms_per_pack_step` lines.

Usage: python pack_torch.py --widths 20 50 128 512 --ks 1 2 4 8 16 --depth 5 --steps 20
                            --warmup 3 --threads 2 [--device cpu|cuda:N]
"""

import argparse
import copy
import math
import time

import torch
from torch.func import functional_call, stack_module_state, vmap

from step_time_torch import NU, mlp


def points(k, n, lo_hi, device):
    """K Latin hypercube samples of n points: [K, n, 2]."""
    cols = []
    for lo, hi in lo_hi:
        u = (torch.argsort(torch.rand(k, n, device=device), dim=1) + torch.rand(k, n, device=device)) / n
        cols.append(lo + (hi - lo) * u)
    return torch.stack(cols, dim=2)


def step(forward, params, opt, k, device):
    d = {"device": device}
    x = points(k, 1280, ((-1.0, 1.0), (0.0, 0.99)), device).requires_grad_(True)
    x0 = torch.stack([torch.rand(k, 42, **d) * 2 - 1, torch.zeros(k, 42, **d)], dim=2)
    xl = torch.stack([-torch.ones(k, 42, **d), torch.rand(k, 42, **d)], dim=2)
    xr = torch.stack([torch.ones(k, 42, **d), torch.rand(k, 42, **d)], dim=2)
    u = forward(params, x)
    du = torch.autograd.grad(u.sum(), x, create_graph=True)[0]
    u_x, u_t = du[..., :1], du[..., 1:]
    u_xx = torch.autograd.grad(u_x.sum(), x, create_graph=True)[0][..., :1]
    loss_r = ((u_t + u * u_x - NU * u_xx) ** 2).mean(dim=(1, 2))
    loss_b = (
        ((forward(params, x0) + torch.sin(math.pi * x0[..., :1])) ** 2).mean(dim=(1, 2))
        + (forward(params, xl) ** 2).mean(dim=(1, 2))
        + (forward(params, xr) ** 2).mean(dim=(1, 2))
    )
    plist = list(params.values())
    g_r = torch.autograd.grad(loss_r.sum(), plist, retain_graph=True)
    g_b = torch.autograd.grad(loss_b.sum(), plist)
    for p, a, b in zip(plist, g_r, g_b):
        p.grad = a + b
    opt.step()
    return (loss_r.sum() + loss_b.sum()).item()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--widths", type=int, nargs="+", default=[20, 50, 128, 512])
    ap.add_argument("--ks", type=int, nargs="+", default=[1, 2, 4, 8, 16])
    ap.add_argument("--depth", type=int, default=5)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    dev = torch.device(args.device)
    for w in args.widths:
        for k in args.ks:
            nets = [mlp(w, args.depth, dev) for _ in range(k)]
            params, _ = stack_module_state(nets)
            base = copy.deepcopy(nets[0]).to("meta")
            forward = vmap(lambda p, x: functional_call(base, (p,), (x,)))
            opt = torch.optim.Adam(list(params.values()), lr=1e-3)
            for _ in range(args.warmup):
                step(forward, params, opt, k, dev)
            t0 = time.perf_counter()
            for _ in range(args.steps):
                step(forward, params, opt, k, dev)
            ms = (time.perf_counter() - t0) / args.steps * 1e3
            print(f"{w} {k} {ms:.3f}", flush=True)


if __name__ == "__main__":
    main()
