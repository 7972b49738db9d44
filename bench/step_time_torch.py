"""Reference PINN training step in PyTorch, the way published PINN code does it.

One step of `burgers` = sample points, forward, input derivatives by nested
`torch.autograd.grad(..., create_graph=True)`, the residual and boundary losses, one
`autograd.grad` per task (the two task gradients a conflict-averse method needs), their sum
into `.grad`, and `Adam.step()`. Prints `width ms_per_step` lines for the driver script.
Each step reads its loss back (`.item()`), so on a GPU a step is timed to its end.

Usage: python step_time_torch.py --widths 50 128 512 --depth 5 --steps 30 --warmup 5 --threads 2
                                 [--device cpu|cuda|cuda:N]
"""

import argparse
import math
import time

import torch

NU = 0.01 / math.pi


def mlp(width: int, depth: int, device="cpu") -> torch.nn.Sequential:
    layers, d_in = [], 2
    for _ in range(depth):
        layers += [torch.nn.Linear(d_in, width), torch.nn.Tanh()]
        d_in = width
    layers.append(torch.nn.Linear(d_in, 1))
    net = torch.nn.Sequential(*layers)
    for m in net:
        if isinstance(m, torch.nn.Linear):
            torch.nn.init.xavier_normal_(m.weight)
            torch.nn.init.zeros_(m.bias)
    return net.to(device)


def latin_hypercube(n: int, device="cpu") -> torch.Tensor:
    # One point per stratum on each axis, strata paired by random permutations.
    cols = []
    for lo, hi in ((-1.0, 1.0), (0.0, 0.99)):
        u = (torch.randperm(n, device=device) + torch.rand(n, device=device)) / n
        cols.append(lo + (hi - lo) * u)
    return torch.stack(cols, dim=1)


def step(net, opt, params, device="cpu"):
    """One training step; points are sampled on `device` (no host-to-device copies)."""
    d = {"device": device}
    x = latin_hypercube(1280, device).requires_grad_(True)
    x0 = torch.stack([torch.rand(42, **d) * 2 - 1, torch.zeros(42, **d)], dim=1)
    xb = torch.cat([
        torch.stack([-torch.ones(42, **d), torch.rand(42, **d)], dim=1),
        torch.stack([torch.ones(42, **d), torch.rand(42, **d)], dim=1),
    ])
    u = net(x)
    du = torch.autograd.grad(u, x, torch.ones_like(u), create_graph=True)[0]
    u_x, u_t = du[:, :1], du[:, 1:]
    u_xx = torch.autograd.grad(u_x, x, torch.ones_like(u_x), create_graph=True)[0][:, :1]
    loss_r = ((u_t + u * u_x - NU * u_xx) ** 2).mean()
    loss_b = ((net(x0) + torch.sin(math.pi * x0[:, :1])) ** 2).mean() + (net(xb[:42]) ** 2).mean() + (
        net(xb[42:]) ** 2
    ).mean()
    g_r = torch.autograd.grad(loss_r, params)
    g_b = torch.autograd.grad(loss_b, params)
    for p, a, b in zip(params, g_r, g_b):
        p.grad = a + b
    opt.step()
    return loss_r.item() + loss_b.item()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--widths", type=int, nargs="+", default=[50, 128, 512])
    ap.add_argument("--depth", type=int, default=5)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    dev = torch.device(args.device)
    for w in args.widths:
        net = mlp(w, args.depth, dev)
        params = list(net.parameters())
        opt = torch.optim.Adam(params, lr=1e-3)
        for _ in range(args.warmup):
            step(net, opt, params, dev)
        t0 = time.perf_counter()
        for _ in range(args.steps):
            step(net, opt, params, dev)
        ms = (time.perf_counter() - t0) / args.steps * 1e3
        print(f"{w} {ms:.3f}", flush=True)


if __name__ == "__main__":
    main()
