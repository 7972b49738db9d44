"""The PyTorch side of bench/sweep-throughput.sh: whole `burgers` training runs, two ways.

  job       one network, the way users run sweeps today (one process per job): nested
            `torch.autograd.grad(create_graph=True)`, one `autograd.grad` per task (the step of
            step_time_torch.py), the method's combination, Adam.
  ensemble  K networks of one (width, method) group as one `torch.func` ensemble (vmap +
            functional_call, the step of pack_torch.py), per-network methods on [K, P] rows.

Both train as trainer-core does by default (SPEC §1-3): Xavier-normal init, raw (x, t) inputs,
fresh points every step (1,280 interior by Latin hypercube, 42 initial, 42 per side), L_b the sum
of one mean per condition, Adam lr 1e-3 with StepLR ×0.9 every 1,000 iterations, relative L2 on
the reference grid (`modsync reference --pde burgers`) every 100 iterations and at the end; the
best one is reported. Methods: adam (g_r + g_b) and dcgd (center variant, SPEC §3).
Prints `width method seed rel_l2_best` per network.

Usage: python sweep_torch.py job --width W --method M --seed S --iters N --reference ref.csv
       python sweep_torch.py ensemble --width W --method M --seeds 0 1 2 3 --iters N
                                      --reference ref.csv [--threads 2]
"""

import argparse
import copy
import math

import torch
from torch.func import functional_call, stack_module_state, vmap

from pack_torch import points
from step_time_torch import NU, mlp

EPS = 1e-8  # method_options.eps


def dcgd_center(gr, gb):
    """DCGD center variant on rows: [K, P] task gradients -> [K, P] update."""
    nr = gr.norm(dim=1, keepdim=True) + EPS
    nb = gb.norm(dim=1, keepdim=True) + EPS
    c = gr / nr + gb / nb
    scale = (c * (gr + gb)).sum(dim=1, keepdim=True) / (c * c).sum(dim=1, keepdim=True)
    return scale * c


def combine(method, gr, gb):
    if method == "adam":
        return gr + gb
    if method == "dcgd":
        return dcgd_center(gr, gb)
    raise SystemExit(f"sweep_torch.py: unknown method {method!r} (adam, dcgd)")


def load_reference(path):
    """The test grid [n, 2] (x, t) and u [n] of `modsync reference --pde burgers`."""
    rows = [line.split(",") for line in open(path).read().split("\n")[1:] if line]
    data = torch.tensor([[float(v) for v in r] for r in rows])
    return data[:, :2].contiguous(), data[:, 2].contiguous()


def losses(forward, x, x0, xl, xr):
    """Per-network L_r and L_b ([K] each) of a batched forward."""
    u = forward(x)
    du = torch.autograd.grad(u.sum(), x, create_graph=True)[0]
    u_x, u_t = du[..., :1], du[..., 1:]
    u_xx = torch.autograd.grad(u_x.sum(), x, create_graph=True)[0][..., :1]
    loss_r = ((u_t + u * u_x - NU * u_xx) ** 2).mean(dim=(-2, -1))
    loss_b = (
        ((forward(x0) + torch.sin(math.pi * x0[..., :1])) ** 2).mean(dim=(-2, -1))
        + (forward(xl) ** 2).mean(dim=(-2, -1))
        + (forward(xr) ** 2).mean(dim=(-2, -1))
    )
    return loss_r, loss_b


def batch(k):
    x = points(k, 1280, ((-1.0, 1.0), (0.0, 0.99)), "cpu").requires_grad_(True)
    x0 = torch.stack([torch.rand(k, 42) * 2 - 1, torch.zeros(k, 42)], dim=2)
    xl = torch.stack([-torch.ones(k, 42), torch.rand(k, 42)], dim=2)
    xr = torch.stack([torch.ones(k, 42), torch.rand(k, 42)], dim=2)
    return x, x0, xl, xr


def train(forward, evaluate, plist, k, method, iters):
    """Trains the K networks whose parameters are `plist` (a leading dim K, or none when K = 1);
    returns the best rel L2 of each."""
    opt = torch.optim.Adam(plist, lr=1e-3)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1000, gamma=0.9)
    best = torch.full((k,), math.inf)
    for it in range(iters + 1):
        if it % 100 == 0 or it == iters:
            best = torch.minimum(best, evaluate())
        if it == iters:
            break
        loss_r, loss_b = losses(forward, *batch(k))
        g_r = torch.autograd.grad(loss_r.sum(), plist, retain_graph=True)
        g_b = torch.autograd.grad(loss_b.sum(), plist)
        flat = lambda gs: torch.cat([g.reshape(k, -1) for g in gs], dim=1)  # noqa: E731
        update = combine(method, flat(g_r), flat(g_b))
        offset = 0
        for p in plist:
            n = p.numel() // k
            p.grad = update[:, offset : offset + n].reshape(p.shape)
            offset += n
        opt.step()
        sched.step()
    return best


def rel_l2(u, exact):
    return (u - exact).norm(dim=-1) / exact.norm()


def run_job(args, grid, exact):
    torch.manual_seed(args.seed)
    net = mlp(args.width, args.depth)
    # A batch of one network: [1, n, 2] points through the plain module.
    forward = lambda x: net(x[0]).unsqueeze(0)  # noqa: E731

    def evaluate():
        with torch.no_grad():
            return rel_l2(net(grid)[:, 0], exact).reshape(1)

    best = train(forward, evaluate, list(net.parameters()), 1, args.method, args.iters)
    print(f"{args.width} {args.method} {args.seed} {best.item():.6e}", flush=True)


def run_ensemble(args, grid, exact):
    nets = []
    for s in args.seeds:
        torch.manual_seed(s)
        nets.append(mlp(args.width, args.depth))
    params, _ = stack_module_state(nets)
    base = copy.deepcopy(nets[0]).to("meta")
    vmapped = vmap(lambda p, x: functional_call(base, (p,), (x,)))
    forward = lambda x: vmapped(params, x)  # noqa: E731
    k = len(args.seeds)

    def evaluate():
        with torch.no_grad():
            return rel_l2(vmapped(params, grid.expand(k, -1, -1))[..., 0], exact)

    best = train(forward, evaluate, list(params.values()), k, args.method, args.iters)
    for s, b in zip(args.seeds, best.tolist()):
        print(f"{args.width} {args.method} {s} {b:.6e}", flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["job", "ensemble"])
    ap.add_argument("--width", type=int, required=True)
    ap.add_argument("--depth", type=int, default=5)
    ap.add_argument("--method", required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--iters", type=int, default=1000)
    ap.add_argument("--reference", required=True)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    grid, exact = load_reference(args.reference)
    if args.mode == "job":
        run_job(args, grid, exact)
    else:
        run_ensemble(args, grid, exact)


if __name__ == "__main__":
    main()
