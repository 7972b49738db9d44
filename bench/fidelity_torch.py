#!/usr/bin/env python3
"""Independent PyTorch reference trainer of the fidelity harness (differential test of trainer-core).

Written from SPEC.md (shared/) and, for the `paper` reading, docs/readings.md (what the paper's
sources do) only, the way reference PINN code is written: an nn.Module MLP,
input derivatives by nested `torch.autograd.grad(..., create_graph=True)` w.r.t. the RAW input
points (normalisation is part of the graph, so the chain rule is automatic), one `autograd.grad`
per task loss, `torch.optim.Adam` as the outer optimiser. Everything in float64 on one CPU thread.

    python bench/fidelity_torch.py run CASE_DIR [--verbose]      inputs.json -> torch.json
    python bench/fidelity_torch.py compare CASE_DIR [--verbose]  ours.json vs torch.json, one line,
                                                                 exit 0 = PASS, 1 = FAIL
    python bench/fidelity_torch.py gen CASE_DIR --pde P --method M [--steps N] [--seed S]
                                                                 synthetic inputs.json (self-tests)

File format: bench/fidelity.md. Where SPEC.md leaves a choice open, the reading taken here is
written next to the code as "READING:" (grep for it). The case's config names the benchmarks'
reading (`pde_options.reading`: `paper`, the sources', or `spec_v1`, SPEC's first; absent means
spec_v1) and may override its L_b (`pde_options.boundary_loss`): see READINGS below.
"""

import argparse
import json
import math
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

torch.set_default_dtype(torch.float64)
torch.set_num_threads(1)

PI = math.pi
STEP0_TARGET = 1e-9
ALL_TARGET = 1e-8


# ================================================================================================
# PDE benchmarks (SPEC §2). Each PDE: input order, domain, normalisation, residual, conditions.
# ================================================================================================


class Condition:
    """One condition of SPEC §2: on the face `coord[face_axis] == face_value`, the quantity
    (u, or du/d(input d1_axis)) equals target(X). The loss term it belongs to: `spec_group` under
    SPEC's reading (conditions of one group share one mean), `source_group` under the sources'
    (the point sets that the source's code pools into one mean; docs/readings.md)."""

    def __init__(self, face_axis, face_value, quantity, d1_axis, target, spec_group, source_group):
        self.face_axis = face_axis
        self.face_value = face_value
        self.quantity = quantity
        self.d1_axis = d1_axis
        self.target = target
        self.spec_group = spec_group
        self.source_group = source_group


class Pde:
    """name, bounds per input axis (in the PDE's input order), whether the input is normalised
    (SPEC's reading; `sources_normalise`: the sources'), which derivatives the residual needs, the
    residual r(X, D), the conditions, in which runs the sources decay the lr (a predicate on the
    base method), and, where the sources draw condition points from the reference grid, that
    grid's axes (`source_grid`, see check_source_grid)."""

    def __init__(self, name, bounds, normalise, d1, d2, residual, conditions, exact,
                 sources_normalise, sources_decay_lr, source_grid=None):
        self.name = name
        self.bounds = bounds
        self.normalise = normalise
        self.d1 = d1
        self.d2 = d2
        self.residual = residual
        self.conditions = conditions
        self.exact = exact
        self.sources_normalise = sources_normalise
        self.sources_decay_lr = sources_decay_lr
        self.source_grid = source_grid

    @property
    def dim(self):
        return len(self.bounds)

    def mu_sigma(self):
        """SPEC §1: mu, sigma of the uniform distribution on [lo, hi]: (lo+hi)/2, (hi-lo)/sqrt(12).
        READING: SPEC §1 says "(Helmholtz, Klein–Gordon)": applied to the 2-D and 3-D variants."""
        mu = torch.tensor([(lo + hi) / 2 for lo, hi in self.bounds])
        sigma = torch.tensor([(hi - lo) / math.sqrt(12.0) for lo, hi in self.bounds])
        return mu, sigma


# --- helmholtz2d: u_xx + u_yy + k^2 u = f on [-1,1]^2, inputs (x, y) ---
H2_K, H2_A1, H2_A2 = 1.0, 1.0, 4.0


def helmholtz2d_exact(X):
    return torch.sin(H2_A1 * PI * X[:, 0]) * torch.sin(H2_A2 * PI * X[:, 1])


def helmholtz2d_residual(X, D):
    f = (H2_K**2 - (H2_A1 * PI) ** 2 - (H2_A2 * PI) ** 2) * helmholtz2d_exact(X)
    return D["d2", 0] + D["d2", 1] + H2_K**2 * D["u"] - f


def zero_target(X):
    return torch.zeros(X.shape[0])


# --- klein_gordon2d: u_tt - u_xx + u^3 = f on (t, x) in [0,1]^2 ---
def klein_gordon2d_exact(X):
    t, x = X[:, 0], X[:, 1]
    return x * torch.cos(5 * PI * t) + (x * t) ** 3


def klein_gordon2d_residual(X, D):
    t, x = X[:, 0], X[:, 1]
    ue = klein_gordon2d_exact(X)
    ue_tt = -25 * PI**2 * x * torch.cos(5 * PI * t) + 6 * x**3 * t
    ue_xx = 6 * x * t**3
    f = ue_tt - ue_xx + ue**3
    return D["d2", 0] - D["d2", 1] + D["u"] ** 3 - f


# --- burgers: u_t + u u_x - nu u_xx = 0, inputs (x, t), raw (no normalisation) ---
BURGERS_NU = 0.01 / PI


def burgers_residual(X, D):
    return D["d1", 1] + D["u"] * D["d1", 0] - BURGERS_NU * D["d2", 0]


# --- helmholtz3d: Δu + k^2 u = f on [-1,1]^3, inputs (x, y, z) ---
H3_K = 1.0


def helmholtz3d_exact(X):
    return torch.sin(4 * PI * X[:, 0]) * torch.sin(4 * PI * X[:, 1]) * torch.sin(3 * PI * X[:, 2])


def helmholtz3d_residual(X, D):
    f = (H3_K**2 - (4 * PI) ** 2 - (4 * PI) ** 2 - (3 * PI) ** 2) * helmholtz3d_exact(X)
    return D["d2", 0] + D["d2", 1] + D["d2", 2] + H3_K**2 * D["u"] - f


# --- klein_gordon3d: u_tt - u_xx - u_yy + u^2 = f on (t,x,y) in [0,10]x[-1,1]^2, f = u^2 - 4u ---
def klein_gordon3d_exact(X):
    t, x, y = X[:, 0], X[:, 1], X[:, 2]
    return (x + y) * torch.cos(2 * t) + x * y * torch.sin(2 * t)


def klein_gordon3d_residual(X, D):
    ue = klein_gordon3d_exact(X)
    f = ue**2 - 4 * ue
    return D["d2", 0] - D["d2", 1] - D["d2", 2] + D["u"] ** 2 - f


def edges(axes_bounds, target, groups):
    """One value condition per face; groups(axis, value) -> (spec_group, source_group)."""
    return [
        Condition(a, v, "value", None, target, *groups(a, v))
        for a, (lo, hi) in enumerate(axes_bounds)
        for v in (lo, hi)
    ]


def own_group(axis, value):
    name = f"face {axis} = {value:g}"
    return name, name


# How condition sets combine into L_b: conditions of one group share one mean of squared errors
# (over all their points together), and L_b is the sum of the groups' means. Which conditions form
# a group is the L_b reading (pde_options.boundary_loss, or the reading's; GROUPINGS below):
#  - sum_of_means (spec_v1's) = the `spec_group`s. READING (SPEC §2 table; notation line "g_b = ∇θ
#    L_b (sum of all boundary and initial-condition losses)"): 2-D problems ("L_b = Σ_edges mean(u²)"
#    for helmholtz2d): every condition (one per edge or initial condition) its own mean; for
#    klein_gordon2d "u(0,x) = x and u_t(0,x) = 0 (both in L_ic)" is read as L_ic = mean((u-x)²) +
#    mean(u_t²), two terms; burgers: initial + 2 sides, 3 means. helmholtz3d: "L_b = mean over all
#    face points": ONE mean over the points of all 6 faces. klein_gordon3d (no formula given): L_ic
#    = mean over the initial face + L_bc = one mean over all points of the 4 side faces (the 3-D
#    convention of helmholtz3d applied to the boundary term).
#  - grouped (paper's) = the `source_group`s, what the sources' code pools (docs/readings.md):
#    burgers: DCGD's loss_ui + loss_ub, loss_ub one mean over X_ub = both sides stacked (so ic 1 :
#    left 1/2 : right 1/2); helmholtz2d: DCGD's loss_u1 + ... + loss_u4, one mean per edge;
#    klein_gordon2d: DCGD's mean((u-x)²) + mean(u_t²) + mean(x = 0) + mean(x = 1); helmholtz3d:
#    SPINN's one mean over all six faces; klein_gordon3d: SPINN's mean over the initial points + one
#    mean over all four side faces.
#  - pooled_mean (the paper's eq. (2) read literally): one mean over every condition point.
# `run --verbose` prints L_b at step 0 under every L_b reading, to help place a loss_b mismatch.
GROUPINGS = {
    "sum_of_means": lambda cond: cond.spec_group,
    "grouped": lambda cond: cond.source_group,
    "pooled_mean": lambda cond: "all",
}

# The readings of the benchmarks (docs/readings.md): the L_b grouping each implies when
# pde_options.boundary_loss does not override it. `paper` also makes each PDE follow its sources
# in input normalisation (Pde.sources_normalise), lr schedule (Pde.sources_decay_lr) and, where
# the sources draw condition points from the reference grid, in that (checked: check_source_grid).
READINGS = {"paper": "grouped", "spec_v1": "sum_of_means"}
# READING (docs/readings.md): in a config's JSON an absent `reading` means spec_v1 (the reading of
# every config written before readings existed).
READING_WHEN_ABSENT = "spec_v1"

# Burgers' reference grid (burgers_shock.mat): x = linspace(-1, 1, 256), t = 0, 0.01, ..., 0.99.
BURGERS_GRID = (
    [-1.0 + 2.0 * i / 255 for i in range(256)],
    [i / 100 for i in range(100)],
)

PDES = {
    "helmholtz2d": Pde(
        "helmholtz2d",
        [(-1.0, 1.0), (-1.0, 1.0)],
        True,
        d1=[],
        d2=[0, 1],
        residual=helmholtz2d_residual,
        conditions=edges([(-1.0, 1.0), (-1.0, 1.0)], zero_target, own_group),
        exact=helmholtz2d_exact,
        # DCGD standardises with empirical moments of 1e5 uniform samples, which approximate the
        # analytic ones that both readings use (docs/readings.md).
        sources_normalise=True,
        # DCGD's Helmholtz.py steps StepLR in the Adam and the DCGD branch alike.
        sources_decay_lr=lambda base: True,
    ),
    "klein_gordon2d": Pde(
        "klein_gordon2d",
        [(0.0, 1.0), (0.0, 1.0)],
        True,
        d1=[],
        d2=[0, 1],
        residual=klein_gordon2d_residual,
        conditions=[
            Condition(0, 0.0, "value", None, lambda X: X[:, 1].clone(), "u(0,x)", "u(0,x)"),
            Condition(0, 0.0, "d1", 0, zero_target, "u_t(0,x)", "u_t(0,x)"),
            Condition(1, 0.0, "value", None, zero_target, "x = 0", "x = 0"),
            Condition(
                1, 1.0, "value", None, lambda X: torch.cos(5 * PI * X[:, 0]) + X[:, 0] ** 3,
                "x = 1", "x = 1",
            ),
        ],
        exact=klein_gordon2d_exact,
        sources_normalise=True,
        # DCGD's Klein_Gordon.py steps StepLR in both branches.
        sources_decay_lr=lambda base: True,
    ),
    "burgers": Pde(
        "burgers",
        [(-1.0, 1.0), (0.0, 1.0)],
        False,
        d1=[0, 1],
        d2=[0],
        residual=burgers_residual,
        conditions=[
            Condition(1, 0.0, "value", None, lambda X: -torch.sin(PI * X[:, 0]), "ic", "ic"),
            Condition(0, -1.0, "value", None, zero_target, "x = -1", "ub"),
            Condition(0, 1.0, "value", None, zero_target, "x = 1", "ub"),
        ],
        exact=None,
        sources_normalise=False,
        # DCGD's Burgers.py steps StepLR in Adam's runs only (none in the DCGD branch).
        sources_decay_lr=lambda base: base == "adam",
        # DCGD's sampler: initial x and side t drawn without replacement from the grid's values.
        source_grid=BURGERS_GRID,
    ),
    "helmholtz3d": Pde(
        "helmholtz3d",
        [(-1.0, 1.0)] * 3,
        True,
        d1=[],
        d2=[0, 1, 2],
        residual=helmholtz3d_residual,
        conditions=edges([(-1.0, 1.0)] * 3, zero_target, lambda a, v: ("faces", "faces")),
        exact=helmholtz3d_exact,
        # SPINN's PINN takes raw coordinates and keeps Adam's lr constant.
        sources_normalise=False,
        sources_decay_lr=lambda base: False,
    ),
    "klein_gordon3d": Pde(
        "klein_gordon3d",
        [(0.0, 10.0), (-1.0, 1.0), (-1.0, 1.0)],
        True,
        d1=[],
        d2=[0, 1, 2],
        residual=klein_gordon3d_residual,
        conditions=[Condition(0, 0.0, "value", None, klein_gordon3d_exact, "ic", "ic")]
        + [
            Condition(a, v, "value", None, klein_gordon3d_exact, "sides", "sides")
            for a in (1, 2)
            for v in (-1.0, 1.0)
        ],
        exact=klein_gordon3d_exact,
        sources_normalise=False,
        sources_decay_lr=lambda base: False,
    ),
}


def on_face(cond, x):
    v = float(x[cond.face_axis])
    return abs(v - cond.face_value) <= 1e-12 * max(1.0, abs(cond.face_value))


def identify_condition(pde, quantity, axis, X, where, group_of):
    """The SPEC condition(s) a point set belongs to, as [(condition, points)]. Each point's face is
    the domain bound its coordinate sits on; quantity and axis must match. A point on an edge or a
    corner lies on several faces (burgers' grid has t = 0 and x = ±1): if one condition's face holds
    every point of the set, the set is that condition. Otherwise a set may span several faces
    (trainer-core takes one mean over them: helmholtz3d's 6 faces, klein_gordon3d's 4 sides); then
    every face must belong to the same L_b group (`group_of`), so that the split cannot change the
    loss. Errors name the set."""
    candidates = [c for c in pde.conditions if c.quantity == quantity and c.d1_axis == axis]
    hits = []
    for i in range(X.shape[0]):
        on = [c for c in candidates if on_face(c, X[i])]
        if not on:
            raise ValueError(
                f"{where}: point {i} {X[i].tolist()} lies on no face of a SPEC condition of "
                f"{pde.name} with quantity={quantity} axis={axis}"
            )
        hits.append(on)
    common = [c for c in candidates if all(c in on for on in hits)]
    if len(common) > 1:
        raise ValueError(f"{where}: every point lies on {len(common)} faces: which condition?")
    if common:
        return [(common[0], X)]
    per_point = [on[0] for on in hits]
    used = list(dict.fromkeys(per_point))
    if len({group_of(c) for c in used}) != 1:
        raise ValueError(
            f"{where}: one point set spans {len(used)} conditions of {pde.name} whose losses "
            f"this L_b reading keeps apart; first point {X[0].tolist()}"
        )
    out = []
    for cond in used:
        idx = [i for i, c in enumerate(per_point) if c is cond]
        out.append((cond, X[idx]))
    return out


def check_source_grid(pde, sets, where):
    """The sources' reading of a PDE with `source_grid` (burgers): each condition set's points lie
    on the reference grid (every coordinate but the face's is one of the grid's values on its axis)
    and are distinct (drawn without replacement)."""
    for cond, X in sets:
        seen = set()
        for i in range(X.shape[0]):
            key = []
            for a, values in enumerate(pde.source_grid):
                if a == cond.face_axis:
                    continue
                v = float(X[i, a])
                j = min(range(len(values)), key=lambda j: abs(values[j] - v))
                if abs(values[j] - v) > 1e-12:
                    raise ValueError(
                        f"{where}: point {i} {X[i].tolist()} is off the reference grid on axis "
                        f"{a} (the sources' reading draws {pde.name}'s condition points from it)"
                    )
                key.append(j)
            if tuple(key) in seen:
                raise ValueError(
                    f"{where}: grid point {X[i].tolist()} drawn twice (the sources draw without "
                    "replacement)"
                )
            seen.add(tuple(key))


def combine_condition_losses(group_of, sets):
    """sets: list of (condition, squared-error vector). L_b = Σ_groups mean over the group's points
    (the reading above)."""
    groups = {}
    for cond, e2 in sets:
        groups.setdefault(group_of(cond), []).append(e2)
    return sum(torch.cat(v).mean() for v in groups.values())


# ================================================================================================
# Network (SPEC §1): MLP in -> [width] x depth -> 1, tanh hidden, linear output.
# ================================================================================================


class MLP(nn.Module):
    def __init__(self, dims):
        super().__init__()
        self.dims = list(dims)
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))

    def forward(self, x, weights=None):
        """weights: per-layer weight to use instead of layer.weight (ModSync's masked W̃)."""
        last = len(self.layers) - 1
        for i, lin in enumerate(self.layers):
            w = lin.weight if weights is None else weights[i]
            x = F.linear(x, w, lin.bias)
            if i < last:
                x = torch.tanh(x)
        return x[:, 0]

    # Flat layout of the format: per layer W as [d_in][d_out] row-major, then b [d_out].
    # nn.Linear.weight is [d_out][d_in], hence the transposes.
    def load_flat(self, theta):
        theta = torch.as_tensor(theta, dtype=torch.float64)
        expected = sum(a * b + b for a, b in zip(self.dims[:-1], self.dims[1:]))
        if theta.numel() != expected:
            raise ValueError(f"theta0 has {theta.numel()} values, dims {self.dims} need {expected}")
        off = 0
        with torch.no_grad():
            for lin in self.layers:
                d_out, d_in = lin.weight.shape
                lin.weight.copy_(theta[off : off + d_in * d_out].reshape(d_in, d_out).T)
                off += d_in * d_out
                lin.bias.copy_(theta[off : off + d_out])
                off += d_out

    def params(self):
        """[W_0, b_0, W_1, b_1, ...] in the flat layout's order."""
        out = []
        for lin in self.layers:
            out += [lin.weight, lin.bias]
        return out

    def flat(self):
        return flatten_layer_tensors(self.params()).detach().clone()


def flatten_layer_tensors(ts):
    """[W_0 ([d_out][d_in]), b_0, ...] -> one flat vector in the file layout."""
    parts = []
    for i, t in enumerate(ts):
        parts.append(t.T.reshape(-1) if i % 2 == 0 else t.reshape(-1))
    return torch.cat(parts)


def unflatten_like(vec, like):
    """Inverse of flatten_layer_tensors, shapes taken from `like` (nn.Linear layout)."""
    out, off = [], 0
    for i, t in enumerate(like):
        n = t.numel()
        piece = vec[off : off + n]
        out.append(piece.reshape(t.shape[1], t.shape[0]).T if i % 2 == 0 else piece.reshape(t.shape))
        off += n
    return out


# ================================================================================================
# Input derivatives by nested reverse-mode autograd (NOT forward jets, on purpose).
# ================================================================================================


def derivatives(u_of_raw, X, d1, d2):
    """u and the requested derivatives w.r.t. the RAW coordinates: D['u'], D['d1', a], D['d2', a].
    Rows are independent points, so grad(sum(u)) gives each row's own gradient."""
    X = X.detach().clone().requires_grad_(True)
    u = u_of_raw(X)
    D = {"u": u}
    if not d1 and not d2:
        return D
    (grad,) = torch.autograd.grad(u.sum(), X, create_graph=True)
    for a in d1:
        D["d1", a] = grad[:, a]
    for a in d2:
        (g2,) = torch.autograd.grad(grad[:, a].sum(), X, create_graph=True)
        D["d2", a] = g2[:, a]
    return D


def condition_quantity(u_of_raw, X, quantity, axis):
    if quantity == "value":
        return derivatives(u_of_raw, X, [], [])["u"]
    return derivatives(u_of_raw, X, [axis], [])["d1", axis]


# ================================================================================================
# Gradient methods (SPEC §3). Pure functions of (g_r, g_b[, state]); flat f64 vectors.
# ================================================================================================


def unit(v):
    """U(v) = v/‖v‖, 0 for v = 0 (SPEC notation)."""
    n = v.norm()
    return v / n if n > 0 else torch.zeros_like(v)


def method_adam(gr, gb, lam_r, lam_b):
    return lam_r * gr + lam_b * gb


def method_pcgrad(gr, gb, eps):
    """Returns (g, branch): branch 'project' when dot < 0 else 'sum'."""
    nr, nb, dot = gr.norm() + eps, gb.norm() + eps, gr @ gb
    if dot < 0:
        return (gr - dot / nb**2 * gb) + (gb - dot / nr**2 * gr), "project"
    return gr + gb, "sum"


def cagrad_dF(gr, gb, g0, phi, p):
    """d/dp of F(p) = Gw·g0 + phi‖Gw‖, Gw = p g_r + (1-p) g_b (F is convex, F' non-decreasing)."""
    d = gr - gb
    v = p * gr + (1 - p) * gb
    nv = v.norm()
    lin = d @ g0
    if nv == 0:
        return float(lin)
    return float(lin + phi * (d @ v) / nv)


def cagrad_weight(gr, gb, c):
    """w* = (p, 1-p), p = argmin over [0,1] of F (SPEC: 1-D problem for two tasks).
    How: F is convex, so p* is where F' changes sign. If F'(0) >= 0, p = 0; if F'(1) <= 0, p = 1;
    otherwise bisection on the sign of F' (evaluated from the vectors) until the bracket is two
    adjacent doubles (~55 halvings, |p - p*| <= 2^-53), i.e. to full f64 precision. The self-test
    checks it against the closed form of F'(p) = 0 (cagrad_weight_closed_form)."""
    g0 = (gr + gb) / 2
    phi = c * g0.norm()
    if cagrad_dF(gr, gb, g0, phi, 0.0) >= 0:
        return 0.0
    if cagrad_dF(gr, gb, g0, phi, 1.0) <= 0:
        return 1.0
    lo, hi = 0.0, 1.0
    while True:
        mid = 0.5 * (lo + hi)
        if mid <= lo or mid >= hi:
            break
        if cagrad_dF(gr, gb, g0, phi, mid) > 0:
            hi = mid
        else:
            lo = mid
    return lo


def cagrad_weight_closed_form(gr, gb, c):
    """Independent closed form (used by the self-test). With a = g_b, d = g_r - g_b, A = ‖d‖²,
    B = a·d, C = ‖a‖², e = d·g0, s = B + pA: F'(p) = 0  <=>  phi s / sqrt((AC - B² + s²)/A) = -e
    <=> s² (A phi² - e²) = e² (AC - B²), s of sign -e. No root in [0,1] -> an end point."""
    g0 = (gr + gb) / 2
    phi = float(c * g0.norm())
    a, d = gb, gr - gb
    A, B, C, e = float(d @ d), float(a @ d), float(a @ a), float(d @ g0)
    if A == 0:
        return 0.0
    den = A * phi**2 - e**2
    if den <= 0:
        return 0.0 if e > 0 else 1.0
    s = -math.copysign(1.0, e) * abs(e) * math.sqrt(max(A * C - B * B, 0.0) / den)
    return min(1.0, max(0.0, (s - B) / A))


def method_cagrad(gr, gb, c):
    p = cagrad_weight(gr, gb, c)
    g0 = (gr + gb) / 2
    gw = p * gr + (1 - p) * gb
    return (g0 + c * g0.norm() / gw.norm() * gw) / (1 + c**2)


def method_dcgd(gr, gb, eps, variant):
    """Returns (g, branch). Branches: center -> None; proj -> 'proj_b' | 'proj_r' | 'sum';
    avg -> 'avg_projected' | 'sum'."""
    nr, nb, dot = gr.norm() + eps, gb.norm() + eps, gr @ gb
    if variant == "center":
        c = gr / nr + gb / nb
        return (c @ (gr + gb)) / (c @ c) * c, None
    gavg = (gr + gb) / 2
    if variant == "proj":
        if gavg @ gb < 0:
            return gr - dot / nb**2 * gb, "proj_b"
        if gavg @ gr < 0:
            return gb - dot / nr**2 * gr, "proj_r"
        return gr + gb, "sum"
    if variant == "avg":
        if gavg @ gb < 0 or gavg @ gr < 0:
            return ((1 - dot / nb**2) * gb + (1 - dot / nr**2) * gr) / 2, "avg_projected"
        return gr + gb, "sum"
    raise ValueError(f"config.method_options.dcgd.variant: unknown variant {variant!r}")


def method_config(gr, gb):
    """ConFIG, two tasks, SPEC §3 literally (no ε)."""
    o1 = gb - (gb @ unit(gr)) * unit(gr)
    o2 = gr - (gr @ unit(gb)) * unit(gb)
    d = unit(unit(o1) + unit(o2))
    return (gr @ d + gb @ d) * d


def dcgd_branch_from_scalars(variant, nr_plain, nb_plain, cos):
    """The branch a side took, recomputed from its recorded ‖g_r‖, ‖g_b‖, cos (compare)."""
    if not all(map(math.isfinite, (nr_plain, nb_plain, cos))):
        return None
    dot = cos * nr_plain * nb_plain
    gavg_b = (dot + nb_plain**2) / 2
    gavg_r = (dot + nr_plain**2) / 2
    if variant == "proj":
        return "proj_b" if gavg_b < 0 else ("proj_r" if gavg_r < 0 else "sum")
    if variant == "avg":
        return "avg_projected" if (gavg_b < 0 or gavg_r < 0) else "sum"
    return None


class Lra:
    """SPEC: every step λ̂ = max|g_r| / mean|g_b|; λ_b ← 0.9 λ_b + 0.1 λ̂; g = g_r + λ_b g_b.
    READING: config lra.alpha is the weight of the NEW estimate (Wang et al. 2021:
    λ ← (1-α) λ + α λ̂, α = 0.1 gives SPEC's 0.9/0.1). λ_b starts at 1 and is updated before use."""

    def __init__(self, alpha):
        self.alpha = alpha
        self.lam_b = 1.0

    def propose(self, gr, gb):
        lam_hat = float(gr.abs().max() / gb.abs().mean())
        lam_b = (1 - self.alpha) * self.lam_b + self.alpha * lam_hat
        return gr + lam_b * gb, lam_b

    def commit(self, lam_b):
        self.lam_b = lam_b


def ntk_lambdas(t_r, t_b):
    return (t_r + t_b) / t_r, (t_r + t_b) / t_b


class MultiAdam:
    """SPEC: no outer Adam; per-task Adam moments; θ ← θ - lr/(1-β₁ᵗ) Σ_k w_k m_k/(√v_k/√(1-β₂ᵗ)+eps).
    t counts applied (non-skipped) steps, from 1."""

    def __init__(self, n, beta1, beta2, eps, w_r, w_b):
        self.b1, self.b2, self.eps, self.w = beta1, beta2, eps, (w_r, w_b)
        self.m = [torch.zeros(n), torch.zeros(n)]
        self.v = [torch.zeros(n), torch.zeros(n)]
        self.t = 0

    def propose(self, gr, gb, lr):
        t = self.t + 1
        m = [self.b1 * self.m[k] + (1 - self.b1) * g for k, g in enumerate((gr, gb))]
        v = [self.b2 * self.v[k] + (1 - self.b2) * g * g for k, g in enumerate((gr, gb))]
        bc1, bc2 = 1 - self.b1**t, 1 - self.b2**t
        step = sum(self.w[k] * m[k] / (v[k].sqrt() / math.sqrt(bc2) + self.eps) for k in range(2))
        return -lr / bc1 * step, (m, v, t)

    def commit(self, state):
        self.m, self.v, self.t = state


class MConfig:
    """Momentum ConFIG (SPEC §3 `mconfig`). One loss per step, alternating.
    READING (SPEC does not say which loss first): step k uses the residual when k is even, the
    boundary loss when k is odd; the parity is that of the step index k (skipped steps included).
    READING (default 'library'): SPEC's "second moment of the pseudo-gradient" uses the term of the
    public ConFIG code (PseudoMomentumOperator), which SPEC says it was assembled from: the
    'pseudo gradient' is the gradient that would have produced the pseudo momentum p(1-β₁ᵗ), i.e.
    (p(1-β₁ᵗ) - β₁ p_prev(1-β₁^{t-1}))/(1-β₁), and that code returns a zero direction until every
    task has been seen once (a warm-up step: θ unchanged, state advanced, not a skip). This default
    was set after comparing with trainer-core, which reads it the same way; 'spec' is the other
    reading.
    Variant 'spec', SPEC's line read literally: m_i ← β₁ m_i + (1-β₁) g_i for the task of
    this step (n_i += 1); m̂_i = m_i/(1-β₁^{n_i}) (0 while n_i = 0: a task not yet seen contributes
    nothing, so ConFIG(m̂_r, 0) = m̂_r at step 0); p = ConFIG(m̂_r, m̂_b) is the pseudo-gradient;
    v ← β₂ v + (1-β₂) p²; θ ← θ - lr p/(√(v/(1-β₂ᵗ)) + eps) (plain SGD step of the Adam-normalised p).
    Then θ ← θ - lr p/(√v̂ + eps) in both variants, t counting the steps with a direction."""

    def __init__(self, n, beta1, beta2, eps, variant):
        self.b1, self.b2, self.eps, self.variant = beta1, beta2, eps, variant
        self.m = [torch.zeros(n), torch.zeros(n)]
        self.count = [0, 0]
        self.v = torch.zeros(n)
        self.fake_m = torch.zeros(n)
        self.t = 0

    def propose(self, k, gr, gb, lr):
        task = k % 2
        g = (gr, gb)[task]
        m = list(self.m)
        count = list(self.count)
        m[task] = self.b1 * m[task] + (1 - self.b1) * g
        count[task] += 1
        if self.variant == "library" and 0 in count:
            state = (m, count, self.v, self.fake_m, self.t)
            return torch.zeros_like(g), state
        mhat = [m[i] / (1 - self.b1 ** count[i]) if count[i] > 0 else torch.zeros_like(g) for i in (0, 1)]
        p = method_config(mhat[0], mhat[1])
        t = self.t + 1
        fake_m = self.fake_m
        if self.variant == "library":
            fake_m = p * (1 - self.b1**t)
            feed = (fake_m - self.b1 * self.fake_m) / (1 - self.b1)
        else:
            feed = p
        v = self.b2 * self.v + (1 - self.b2) * feed * feed
        vhat = v / (1 - self.b2**t)
        return -lr * p / (vhat.sqrt() + self.eps), (m, count, v, fake_m, t)

    def commit(self, state):
        self.m, self.count, self.v, self.fake_m, self.t = state


# ================================================================================================
# ModSync (SPEC §4)
# ================================================================================================


def step_grad_estimator(z):
    """Long-tailed estimator S'(z): 2 - 4|z| for |z| <= 0.4; 0.4 for 0.4 < |z| <= 1; 0 beyond."""
    az = z.abs()
    return torch.where(az <= 0.4, 2 - 4 * az, torch.where(az <= 1.0, torch.full_like(z, 0.4), torch.zeros_like(z)))


def ste_grads(G, W, Z, M):
    """SPEC §4 with G = ∂L/∂W̃, W and Z = |W| - t of shape [d_out, d_in] (nn.Linear layout),
    thresholds one per output unit (row): ∂L/∂W = G⊙M + G⊙W⊙S'(Z)⊙sign(W);
    ∂L/∂t = -Σ_cols G⊙W⊙S'(Z), 'cols' = the d_in axis (dim 1), giving one value per output unit."""
    gws = G * W * step_grad_estimator(Z)
    return G * M + gws * torch.sign(W), -gws.sum(dim=1)


def layer_mask(W, t_r, t_b):
    t = (t_r + t_b) / 2
    Z = W.abs() - t[:, None]
    return Z, (Z > 0).to(W.dtype)


def mask_checksum(M):
    """kept, Σ over kept of (i*d_out + j + 1), i = input index, j = output index ([d_in][d_out])."""
    d_out, d_in = M.shape
    idx = torch.arange(d_in)[None, :] * d_out + torch.arange(d_out)[:, None] + 1
    kept = int(M.sum().item())
    return [kept, int((idx * (M > 0)).sum().item())]


def sparsity_loss(t_rs, t_bs, beta, mode, rw, detach_rw, max_exp):
    """L_s = Σ_layers Σ_units R_w (e^{-t_r} + e^{-t_b}) (SPEC §4, Eq. 7-9).
    R_w = exp(min((t_r - t_b)²/β, max_exp)) per unit, or per layer with ‖t_r - t_b‖²;
    R_w ≡ 1 in modes dual_thresholds and sparsity_only. READING: 'clamp the exponent (≤ 30)' is
    min(exponent, rw_max_exponent), so the clamped R_w has zero gradient."""
    total = 0.0
    for t_r, t_b in zip(t_rs, t_bs):
        if mode == "full":
            diff2 = (t_r - t_b) ** 2
            expo = diff2 / beta if rw == "per_unit" else diff2.sum() / beta
            R = torch.exp(torch.clamp(expo, max=max_exp))
            if detach_rw:
                R = R.detach()
        else:
            R = 1.0
        total = total + (R * (torch.exp(-t_r) + torch.exp(-t_b))).sum()
    return total


# ================================================================================================
# Config access
# ================================================================================================


def cfg_get(cfg, path):
    cur = cfg
    for key in path.split("."):
        if not isinstance(cur, dict) or key not in cur:
            raise KeyError(f"inputs.json: config.{path} is missing (needed by this method)")
        cur = cur[key]
    return cur


def norm_enum(value):
    return str(value).strip().lower().replace("-", "_")


# ================================================================================================
# The trainer
# ================================================================================================


class StepPoints:
    """One step's points as tensors: residual X, condition sets, optional NTK subsample."""

    def __init__(self, pde, raw, k, group_of, on_source_grid):
        self.residual = torch.tensor(raw["residual"], dtype=torch.float64)
        if self.residual.ndim != 2 or self.residual.shape[1] != pde.dim:
            raise ValueError(f"steps[{k}].residual: expected rows of {pde.dim} coordinates")
        self.sets = []
        for j, c in enumerate(raw["conditions"]):
            X = torch.tensor(c["points"], dtype=torch.float64)
            where = f"steps[{k}].conditions[{j}]"
            sets = identify_condition(pde, c["quantity"], c.get("axis"), X, where, group_of)
            if on_source_grid:
                check_source_grid(pde, sets, where)
            self.sets.extend(sets)
        self.ntk = None
        if raw.get("ntk") is not None:
            nt = raw["ntk"]
            groups = {}
            for b in nt["boundary"]:
                groups.setdefault((b["quantity"], b.get("axis")), []).append(b["point"])
            self.ntk = (
                torch.tensor(nt["residual"], dtype=torch.float64),
                [(q, a, torch.tensor(pts, dtype=torch.float64)) for (q, a), pts in groups.items()],
            )


class Trainer:
    def __init__(self, inputs, mconfig_variant=None, mconfig_thresholds="active", verbose=False):
        self.verbose = verbose
        pde_name = inputs["pde"]
        if pde_name not in PDES:
            raise ValueError(f"inputs.json: unknown pde {pde_name!r}")
        self.pde = PDES[pde_name]
        self.cfg = inputs["config"]
        self.method_key = inputs["method"]
        self.modsync_on, self.method, self.dcgd_variant = parse_method(self.method_key, self.cfg)
        # The reading (READINGS): pde_options.reading, absent = spec_v1; pde_options.boundary_loss
        # (absent or null: the reading's) overrides its L_b grouping alone.
        pde_options = self.cfg.get("pde_options") or {}
        self.reading = pde_options.get("reading", READING_WHEN_ABSENT)
        if self.reading not in READINGS:
            raise ValueError(f"inputs.json: unknown pde_options.reading {self.reading!r}")
        self.boundary_loss = pde_options.get("boundary_loss") or READINGS[self.reading]
        if self.boundary_loss not in GROUPINGS:
            raise ValueError(f"inputs.json: unknown pde_options.boundary_loss {self.boundary_loss!r}")
        self.group_of = GROUPINGS[self.boundary_loss]
        follows_sources = self.reading == "paper"
        self.normalise = self.pde.sources_normalise if follows_sources else self.pde.normalise
        self.eps = float(cfg_get(self.cfg, "method_options.eps"))
        self.lr = float(cfg_get(self.cfg, "lr"))
        # StepLR when lr_decay is on: in every run under spec_v1; under paper where the PDE's
        # sources decay it, by the base method (modsync+X runs as X does).
        self.lr_decay = bool(cfg_get(self.cfg, "lr_decay")) and (
            not follows_sources or self.pde.sources_decay_lr(self.method)
        )
        self.decay_every = int(cfg_get(self.cfg, "lr_decay_every"))
        self.decay_gamma = float(cfg_get(self.cfg, "lr_decay_gamma"))
        # The case's config names the reading trainer-core used (method_options.mconfig.variant:
        # reference = 'library', literal = 'spec'); --mconfig-variant overrides it.
        configured = {"reference": "library", "literal": "spec"}[
            norm_enum(cfg_get(self.cfg, "method_options.mconfig.variant"))
        ]
        self.mconfig_variant = mconfig_variant or configured
        self.mconfig_thresholds = mconfig_thresholds

        self.net = MLP(inputs["dims"])
        if self.net.dims[0] != self.pde.dim or self.net.dims[-1] != 1:
            raise ValueError(f"inputs.json: dims {self.net.dims} do not fit {pde_name}")
        self.net.load_flat(inputs["theta0"])
        self.n_params = sum(p.numel() for p in self.net.params())
        on_grid = follows_sources and self.pde.source_grid is not None
        self.steps = [
            StepPoints(self.pde, s, k, self.group_of, on_grid) for k, s in enumerate(inputs["steps"])
        ]
        self.mu, self.sigma = self.pde.mu_sigma()

        self.setup_method()
        self.setup_modsync(inputs.get("modsync"))

    # ---------- setup ----------
    def setup_method(self):
        m, mo = self.method, "method_options."
        self.outer_adam = None
        if m in ("multiadam", "mconfig"):
            if m == "multiadam":
                self.multiadam = MultiAdam(
                    self.n_params,
                    float(cfg_get(self.cfg, mo + "multiadam.beta1")),
                    float(cfg_get(self.cfg, mo + "multiadam.beta2")),
                    float(cfg_get(self.cfg, mo + "multiadam.eps")),
                    float(cfg_get(self.cfg, mo + "multiadam.weight_r")),
                    float(cfg_get(self.cfg, mo + "multiadam.weight_b")),
                )
            else:
                self.mconfig = MConfig(
                    self.n_params,
                    float(cfg_get(self.cfg, mo + "mconfig.beta1")),
                    float(cfg_get(self.cfg, mo + "mconfig.beta2")),
                    float(cfg_get(self.cfg, mo + "mconfig.eps")),
                    self.mconfig_variant,
                )
        else:
            # torch.optim.Adam semantics: betas (0.9, 0.999), eps 1e-8 (SPEC §3).
            self.outer_adam = torch.optim.Adam(
                self.net.params(), lr=self.lr, betas=(0.9, 0.999), eps=1e-8, foreach=False
            )
        if m == "adam":
            self.adam_lams = (
                float(cfg_get(self.cfg, mo + "adam.lambda_r")),
                float(cfg_get(self.cfg, mo + "adam.lambda_b")),
            )
        if m == "lra":
            self.lra = Lra(float(cfg_get(self.cfg, mo + "lra.alpha")))
        if m == "ntk":
            self.ntk_lams = (1.0, 1.0)  # until the first step that carries NTK points
        if m == "cagrad":
            self.cagrad_c = float(cfg_get(self.cfg, mo + "cagrad.c"))

    def setup_modsync(self, ms):
        self.masked = []
        if not self.modsync_on:
            if ms is not None:
                raise ValueError("inputs.json: 'modsync' is set but the method is not modsync+X")
            return
        if ms is None:
            raise ValueError("inputs.json: method is modsync+X but 'modsync' is null")
        c = lambda k: cfg_get(self.cfg, "modsync." + k)  # noqa: E731
        self.ms_lam_r, self.ms_lam_b = float(c("lambda_r")), float(c("lambda_b"))
        self.ms_lam_s, self.ms_beta = float(c("lambda_s")), float(c("beta"))
        self.ms_lr_t, self.ms_lr_t_decay = float(c("lr_t")), bool(c("lr_t_decay"))
        self.ms_mode = norm_enum(c("mode"))
        self.ms_rw = norm_enum(c("rw"))
        self.ms_detach_rw = bool(c("detach_rw"))
        self.ms_max_exp = float(c("rw_max_exponent"))
        self.ms_route = bool(c("route_thresholds"))
        self.ms_reset_below = float(c("reset_below"))
        if self.ms_mode not in ("full", "dual_thresholds", "sparsity_only"):
            raise ValueError(f"config.modsync.mode: unknown mode {self.ms_mode!r}")
        if self.ms_rw not in ("per_unit", "per_layer"):
            raise ValueError(f"config.modsync.rw: unknown value {self.ms_rw!r}")
        self.masked = [int(i) for i in ms["masked_layers"]]
        t_r0 = torch.tensor(ms["t_r0"], dtype=torch.float64)
        t_b0 = torch.tensor(ms["t_b0"], dtype=torch.float64)
        sizes = [self.net.dims[l + 1] for l in self.masked]
        if t_r0.numel() != sum(sizes) or t_b0.numel() != sum(sizes):
            raise ValueError(f"modsync.t_r0/t_b0: expected {sum(sizes)} values (Σ d_out of masked)")
        if self.ms_mode == "sparsity_only":
            # READING: 'one shared threshold' — t_r and t_b are kept equal (their mean at start),
            # and both receive the same (un-routed) gradient below, so they stay equal.
            t_r0 = t_b0 = (t_r0 + t_b0) / 2
        self.t_r = [nn.Parameter(x.clone()) for x in torch.split(t_r0, sizes)]
        self.t_b = [nn.Parameter(x.clone()) for x in torch.split(t_b0, sizes)]
        # Threshold optimiser: Adam (SPEC §4), default betas/eps, lr = modsync.lr_t.
        self.t_adam = torch.optim.Adam(
            [p for pair in zip(self.t_r, self.t_b) for p in pair],
            lr=self.ms_lr_t, betas=(0.9, 0.999), eps=1e-8, foreach=False,
        )

    # ---------- forward / losses ----------
    def u_of_raw(self, weights):
        def f(X):
            x = (X - self.mu) / self.sigma if self.normalise else X
            return self.net(x, weights)

        return f

    def residual(self, weights, X):
        D = derivatives(self.u_of_raw(weights), X, self.pde.d1, self.pde.d2)
        return self.pde.residual(X, D)

    def condition_errors(self, weights, sets):
        out = []
        for cond, X in sets:
            q = condition_quantity(self.u_of_raw(weights), X, cond.quantity, cond.d1_axis)
            out.append((cond, (q - cond.target(X)) ** 2))
        return out

    # ---------- masks ----------
    def prepare_masks(self):
        """Reset rule, then masks of this step. Returns per-layer (Z, M), masks record, resets.
        READING: the reset is part of building the step's masks, so it stands even if the step is
        then skipped."""
        info, masks, resets = {}, [], []
        for j, l in enumerate(self.masked):
            W = self.net.layers[l].weight.detach()
            Z, M = layer_mask(W, self.t_r[j].detach(), self.t_b[j].detach())
            fired = 0
            if M.mean().item() <= self.ms_reset_below:
                # READING: only the values are reset; the thresholds' Adam moments are kept.
                with torch.no_grad():
                    self.t_r[j].zero_()
                    self.t_b[j].zero_()
                Z, M = layer_mask(W, self.t_r[j].detach(), self.t_b[j].detach())
                fired = 1
            info[l] = (Z, M)
            masks.append(mask_checksum(M))
            resets.append(fired)
        return info, masks, resets

    def effective_weights(self, mask_info):
        """W̃ = M ⊙ W as fresh leaves for masked layers (their gradient G = ∂L/∂W̃ is then mapped
        by the straight-through formulas), the plain parameters elsewhere."""
        ws = []
        for l, lin in enumerate(self.net.layers):
            if l in mask_info:
                ws.append((mask_info[l][1] * lin.weight.detach()).requires_grad_(True))
            else:
                ws.append(lin.weight)
        return ws

    def grad_leaves(self, weights):
        leaves = []
        for l, lin in enumerate(self.net.layers):
            leaves += [weights[l], lin.bias]
        return leaves

    def theta_and_threshold_grads(self, scalar, weights, mask_info):
        """∇θ of a scalar (straight-through for masked weights) as a flat vector, and ∂/∂t per
        masked layer (None without ModSync)."""
        grads = torch.autograd.grad(
            scalar, self.grad_leaves(weights), retain_graph=True, materialize_grads=True
        )  # materialize: ∂u/∂x does not depend on the last bias
        grads = [g.detach() for g in grads]  # materialized zeros inherit requires_grad
        t_grads = []
        for l in range(len(self.net.layers)):
            if l in mask_info:
                Z, M = mask_info[l]
                gW, gt = ste_grads(grads[2 * l], self.net.layers[l].weight.detach(), Z, M)
                grads[2 * l] = gW
                t_grads.append(gt)
        return flatten_layer_tensors(grads), t_grads

    def ntk_trace(self, q, weights, mask_info):
        """Σ_i ‖∂q_i/∂θ‖² (straight-through under ModSync), one backward per point."""
        total = 0.0
        for i in range(q.shape[0]):
            g, _ = self.theta_and_threshold_grads(q[i], weights, mask_info)
            total += float(g @ g)
        return total

    def ntk_traces(self, pts, weights, mask_info):
        Xr, boundary = pts.ntk
        T_r = self.ntk_trace(self.residual(weights, Xr), weights, mask_info)
        T_b = 0.0
        for quantity, axis, X in boundary:
            q = condition_quantity(self.u_of_raw(weights), X, quantity, axis)
            T_b += self.ntk_trace(q, weights, mask_info)
        return T_r, T_b

    # ---------- one step ----------
    def lr_at(self, k):
        """The θ learning rate of step k (StepLR where this run decays it)."""
        if not self.lr_decay:
            return self.lr
        return self.lr * self.decay_gamma ** (k // self.decay_every)

    def step(self, k):
        pts = self.steps[k]
        theta_before = self.net.flat()
        rec = {"masks": None, "resets": None}
        mask_info = {}
        if self.modsync_on:
            mask_info, rec["masks"], rec["resets"] = self.prepare_masks()
        weights = self.effective_weights(mask_info)

        L_r = self.residual(weights, pts.residual).pow(2).mean()
        L_b = combine_condition_losses(self.group_of, self.condition_errors(weights, pts.sets))
        gr, tgr = self.theta_and_threshold_grads(L_r, weights, mask_info)
        gb, tgb = self.theta_and_threshold_grads(L_b, weights, mask_info)
        if self.verbose and k == 0:
            self.print_lb_readings(weights, pts)

        nr, nb = gr.norm().item(), gb.norm().item()
        rec.update(loss_r=L_r.item(), loss_b=L_b.item(), norm_g_r=nr, norm_g_b=nb)
        rec["cos"] = (gr @ gb).item() / (nr * nb) if nr * nb > 0 else float("nan")

        finite = bool(torch.isfinite(gr).all() and torch.isfinite(gb).all())
        delta, commit = None, None
        if finite:
            ntk_points = pts if (self.method == "ntk" and pts.ntk is not None) else None
            delta, commit = self.propose_update(k, gr, gb, weights, mask_info, ntk_points)
        t_step = None
        if finite and self.modsync_on:
            if self.method == "mconfig" and self.mconfig_thresholds == "active":
                # READING (default 'active'): mconfig back-propagates one loss per step, so only
                # that loss's ∂/∂t exists this step; the other threshold gets λ_s ∂L_s only.
                zero = lambda ts: [torch.zeros_like(x) for x in ts]  # noqa: E731
                tgr, tgb = (tgr, zero(tgb)) if k % 2 == 0 else (zero(tgr), tgb)
            t_step = self.threshold_grads(tgr, tgb)
        # SPEC §3: a zero or non-finite gradient skips the step (nothing changes, no optimiser
        # counter advances). READING: checked on g_r, g_b, the method's proposal, and the
        # threshold gradients.
        skipped = (
            delta is None
            or not delta.usable()
            or (t_step is not None and not all(bool(torch.isfinite(g).all()) for g in t_step))
        )
        rec["skipped"] = skipped
        if not skipped:
            commit()
            self.apply_theta_update(k, delta)
            if t_step is not None:
                self.apply_threshold_update(k, t_step)
        rec["update"] = (self.net.flat() - theta_before).tolist()
        return rec

    def propose_update(self, k, gr, gb, weights, mask_info, ntk_points):
        """(delta, commit): delta is either ('dir', g) for the outer Adam or ('upd', Δθ) for a
        method with its own optimiser; commit() stores the method's new state."""
        m, nothing = self.method, (lambda: None)
        if self.modsync_on:
            # READING: Eq. 10 weights λ_r L_r + λ_b L_b, so A receives λ_r g_r, λ_b g_b (the
            # recorded norms/cos are of the unweighted task gradients). λ = 1 by default.
            gr, gb = self.ms_lam_r * gr, self.ms_lam_b * gb
        if m == "adam":
            return Proposal("dir", method_adam(gr, gb, *self.adam_lams)), nothing
        if m == "lra":
            g, lam_b = self.lra.propose(gr, gb)
            return Proposal("dir", g), (lambda: self.lra.commit(lam_b))
        if m == "ntk":
            lams = self.ntk_lams
            if ntk_points is not None:
                # READING: recomputed on every step that carries an `ntk` entry, before use.
                lams = ntk_lambdas(*self.ntk_traces(ntk_points, weights, mask_info))

            def commit():
                self.ntk_lams = lams

            return Proposal("dir", lams[0] * gr + lams[1] * gb), commit
        if m == "pcgrad":
            return Proposal("dir", method_pcgrad(gr, gb, self.eps)[0]), nothing
        if m == "cagrad":
            return Proposal("dir", method_cagrad(gr, gb, self.cagrad_c)), nothing
        if m == "dcgd":
            return Proposal("dir", method_dcgd(gr, gb, self.eps, self.dcgd_variant)[0]), nothing
        if m == "config":
            return Proposal("dir", method_config(gr, gb)), nothing
        lr = self.lr_at(k)
        if m == "multiadam":
            upd, state = self.multiadam.propose(gr, gb, lr)
            return Proposal("upd", upd), (lambda: self.multiadam.commit(state))
        if m == "mconfig":
            upd, state = self.mconfig.propose(k, gr, gb, lr)
            warmup = self.mconfig.variant == "library" and 0 in state[1]
            return Proposal("upd", upd, warmup), (lambda: self.mconfig.commit(state))
        raise ValueError(f"unknown method {m}")

    def threshold_grads(self, tgr, tgb):
        """Per masked layer, gradients for t_r and t_b (SPEC §4 routing + λ_s ∂L_s/∂t)."""
        t_r = [t.detach().clone().requires_grad_(True) for t in self.t_r]
        t_b = [t.detach().clone().requires_grad_(True) for t in self.t_b]
        L_s = sparsity_loss(t_r, t_b, self.ms_beta, self.ms_mode, self.ms_rw, self.ms_detach_rw, self.ms_max_exp)
        gs = torch.autograd.grad(L_s, t_r + t_b)
        gs_r, gs_b = gs[: len(t_r)], gs[len(t_r) :]
        out = []
        for j in range(len(self.masked)):
            # t = (t_r + t_b)/2, so ∂L/∂t_r = ½ ∂L/∂t.
            if self.ms_route and self.ms_mode != "sparsity_only":
                data_r = 0.5 * self.ms_lam_r * tgr[j]
                data_b = 0.5 * self.ms_lam_b * tgb[j]
            else:
                # READING: route_thresholds off (and sparsity_only's shared threshold): each
                # threshold gets the plain partial derivative of Eq. 10 through t = (t_r+t_b)/2.
                data_r = data_b = 0.5 * (self.ms_lam_r * tgr[j] + self.ms_lam_b * tgb[j])
            out.append(data_r + self.ms_lam_s * gs_r[j])
            out.append(data_b + self.ms_lam_s * gs_b[j])
        return out

    def apply_theta_update(self, k, delta):
        params = self.net.params()
        if delta.kind == "dir":
            for group in self.outer_adam.param_groups:
                group["lr"] = self.lr_at(k)
            for p, g in zip(params, unflatten_like(delta.vec, params)):
                p.grad = g.clone()
            self.outer_adam.step()
            self.outer_adam.zero_grad(set_to_none=True)
        else:
            with torch.no_grad():
                for p, d in zip(params, unflatten_like(delta.vec, params)):
                    p.add_(d)

    def apply_threshold_update(self, k, t_step):
        """READING: lr_t follows the θ schedule in force (lr_at(k) / lr) only when lr_t_decay is
        true."""
        for group in self.t_adam.param_groups:
            group["lr"] = self.ms_lr_t * (self.lr_at(k) / self.lr if self.ms_lr_t_decay else 1.0)
        params = [p for pair in zip(self.t_r, self.t_b) for p in pair]
        for p, g in zip(params, t_step):
            p.grad = g.clone()
        self.t_adam.step()
        self.t_adam.zero_grad(set_to_none=True)

    def print_lb_readings(self, weights, pts):
        errs = self.condition_errors(weights, pts.sets)
        for how, group_of in GROUPINGS.items():
            val = combine_condition_losses(group_of, errs).item()
            mark = " (used)" if how == self.boundary_loss else ""
            print(f"step 0 L_b under {how}: {val:.17g}{mark}", file=sys.stderr)

    def run(self):
        out = {"steps": []}
        for k in range(len(self.steps)):
            out["steps"].append(self.step(k))
        out["theta"] = self.net.flat().tolist()
        out["t_r"] = torch.cat([t.detach() for t in self.t_r]).tolist() if self.modsync_on else None
        out["t_b"] = torch.cat([t.detach() for t in self.t_b]).tolist() if self.modsync_on else None
        return out


class Proposal:
    """What a method proposes for θ: kind 'dir' = a direction for the outer Adam, kind 'upd' = a
    Δθ applied as is (multiadam, mconfig). warmup: a zero Δθ that is not a skip (mconfig library
    variant before every task has been seen)."""

    def __init__(self, kind, vec, warmup=False):
        self.kind, self.vec, self.warmup = kind, vec, warmup

    def usable(self):
        return bool(torch.isfinite(self.vec).all()) and (self.warmup or bool((self.vec != 0).any()))


BASE_METHODS = ("adam", "lra", "ntk", "multiadam", "pcgrad", "cagrad", "dcgd", "config", "mconfig")


def parse_method(key, cfg):
    """'modsync+dcgd:proj' -> (True, 'dcgd', 'proj'). The dcgd variant comes from the config; a
    ':variant' suffix in the key must agree with it."""
    modsync_on = key.startswith("modsync+")
    base = key[len("modsync+") :] if modsync_on else key
    base, _, suffix = base.partition(":")
    if base not in BASE_METHODS:
        raise ValueError(f"inputs.json: unknown method {key!r}")
    variant = None
    if base == "dcgd":
        variant = norm_enum(cfg_get(cfg, "method_options.dcgd.variant"))
        if suffix and norm_enum(suffix) != variant:
            raise ValueError(f"method {key!r} disagrees with config dcgd.variant {variant!r}")
    return modsync_on, base, variant


# ================================================================================================
# JSON I/O
# ================================================================================================


def finite_or_none(x):
    return x if isinstance(x, (int, bool)) or math.isfinite(x) else None


def clean(obj):
    """Non-finite floats -> null (serde_json's convention); read back as NaN."""
    if isinstance(obj, float):
        return finite_or_none(obj)
    if isinstance(obj, list):
        return [clean(v) for v in obj]
    if isinstance(obj, dict):
        return {k: clean(v) for k, v in obj.items()}
    return obj


def cmd_run(case_dir, verbose, mconfig_variant, mconfig_thresholds):
    with open(f"{case_dir}/inputs.json") as f:
        inputs = json.load(f)
    t0 = time.time()
    trainer = Trainer(inputs, mconfig_variant, mconfig_thresholds, verbose=verbose)
    out = trainer.run()
    with open(f"{case_dir}/torch.json", "w") as f:
        json.dump(clean(out), f)
    print(
        f"{inputs['pde']} {inputs['method']}: {len(out['steps'])} steps in {time.time() - t0:.1f}s",
        file=sys.stderr,
    )
    return 0


# ================================================================================================
# Compare
# ================================================================================================

SCALARS = ("loss_r", "loss_b", "norm_g_r", "norm_g_b", "cos")


def as_float(x):
    return float("nan") if x is None else float(x)


def rel_diff(a, b):
    """‖a - b‖ / max(‖b‖, 1e-12), b = torch's value; non-finite values: 0 if both sides agree on
    the same non-finite pattern, else inf."""
    a = torch.tensor([as_float(v) for v in (a if isinstance(a, list) else [a])])
    b = torch.tensor([as_float(v) for v in (b if isinstance(b, list) else [b])])
    if a.shape != b.shape:
        return float("inf")
    fa, fb = torch.isfinite(a), torch.isfinite(b)
    if not torch.equal(fa, fb):
        return float("inf")
    if not fa.all():
        same = torch.equal(torch.isnan(a), torch.isnan(b)) and torch.equal(a[~fa & ~torch.isnan(a)], b[~fb & ~torch.isnan(b)])
        if not same:
            return float("inf")
        a, b = a[fa], b[fb]
    num = (a - b).norm().item()
    return num / max(b.norm().item(), 1e-12)


def decisions(side, method_key, cfg):
    """Per step: the discrete decisions of one side, from that side's own records."""
    modsync_on, base, variant = parse_method(method_key, cfg)
    lam_r = lam_b = 1.0
    if modsync_on:
        lam_r = float(cfg_get(cfg, "modsync.lambda_r"))
        lam_b = float(cfg_get(cfg, "modsync.lambda_b"))
    out = []
    for s in side["steps"]:
        nr, nb = lam_r * as_float(s["norm_g_r"]), lam_b * as_float(s["norm_g_b"])
        cos = as_float(s["cos"])
        branch = None
        if base == "pcgrad":
            branch = ("project" if cos * nr * nb < 0 else "sum") if math.isfinite(cos) else None
        elif base == "dcgd" and variant in ("proj", "avg"):
            branch = dcgd_branch_from_scalars(variant, nr, nb, cos)
        masks = None if s.get("masks") is None else [list(map(int, m)) for m in s["masks"]]
        resets = None if s.get("resets") is None else [int(r) for r in s["resets"]]
        out.append({"skipped": bool(s["skipped"]), "branch": branch, "masks": masks, "resets": resets})
    return out


def first_index(pred, n):
    for k in range(n):
        if pred(k):
            return k
    return None


def compare(ours, theirs, inputs, verbose=False):
    """Returns (line, passed). theirs = torch (the reference b of the relative difference)."""
    pde, method = inputs["pde"], inputs["method"]
    n = len(theirs["steps"])
    problems = []
    if len(ours["steps"]) != n:
        problems.append(f"step count: ours {len(ours['steps'])} torch {n}")
        n = min(n, len(ours["steps"]))
    dec_o = decisions(ours, method, inputs["config"])[:n]
    dec_t = decisions(theirs, method, inputs["config"])[:n]
    diverge = first_index(lambda k: dec_o[k] != dec_t[k], n)
    flip = first_index(lambda k: k > 0 and dec_t[k] != dec_t[k - 1], n)
    held = n if diverge is None else diverge

    per_step = []
    for k in range(n):
        so, st = ours["steps"][k], theirs["steps"][k]
        d = {q: rel_diff(so[q], st[q]) for q in SCALARS}
        d["update"] = rel_diff(so["update"], st["update"])
        per_step.append(d)

    step0 = max(per_step[0].values()) if n > 0 else float("nan")
    all_vals = [v for k in range(held) for v in per_step[k].values()]
    final = {}
    if diverge is None and not problems:
        final["theta"] = rel_diff(ours["theta"], theirs["theta"])
        if theirs.get("t_r") is not None or ours.get("t_r") is not None:
            final["t_r"] = rel_diff(ours.get("t_r") or [], theirs.get("t_r") or [])
            final["t_b"] = rel_diff(ours.get("t_b") or [], theirs.get("t_b") or [])
        all_vals += list(final.values())
    max_all = max(all_vals) if all_vals else float("nan")

    if diverge == 0:
        problems.append("decisions differ at step 0 (same inputs: they must agree)")
    if held > 0 and not step0 <= STEP0_TARGET:
        problems.append(f"step 0 max rel {step0:.3e} > {STEP0_TARGET:g}")
    if all_vals and not max_all <= ALL_TARGET:
        problems.append(f"max rel {max_all:.3e} > {ALL_TARGET:g}")
    passed = not problems

    if verbose:
        print_verbose(per_step, dec_o, dec_t, final, held, problems)
    fmt = lambda k: "-" if k is None else str(k)  # noqa: E731
    line = f"{pde} {method} {step0:.3e} {max_all:.3e} {fmt(flip)} {fmt(diverge)} {'PASS' if passed else 'FAIL'}"
    return line, passed


def print_verbose(per_step, dec_o, dec_t, final, held, problems):
    cols = list(SCALARS) + ["update"]
    print("step " + " ".join(f"{c:>10}" for c in cols) + "  decisions (ours | torch)", file=sys.stderr)
    for k, d in enumerate(per_step):
        mark = " " if k < held else "x"
        dec = "" if dec_o[k] == dec_t[k] else f"  DIFFER: {dec_o[k]} | {dec_t[k]}"
        if dec_o[k] == dec_t[k] and (dec_o[k]["branch"] or dec_o[k]["skipped"]):
            dec = f"  {dec_o[k]['branch'] or ''}{' skipped' if dec_o[k]['skipped'] else ''}"
        print(f"{k:>3}{mark} " + " ".join(f"{d[c]:10.3e}" for c in cols) + dec, file=sys.stderr)
    for q, v in final.items():
        print(f"final {q}: {v:.3e}", file=sys.stderr)
    for p in problems:
        print(f"problem: {p}", file=sys.stderr)


def cmd_compare(case_dir, verbose):
    with open(f"{case_dir}/inputs.json") as f:
        inputs = json.load(f)
    with open(f"{case_dir}/ours.json") as f:
        ours = json.load(f)
    with open(f"{case_dir}/torch.json") as f:
        theirs = json.load(f)
    line, passed = compare(ours, theirs, inputs, verbose)
    print(line)
    return 0 if passed else 1


# ================================================================================================
# Synthetic inputs (self-tests, until the Rust dump exists)
# ================================================================================================


def default_config(method):
    return {
        "lr": 1e-3,
        "lr_decay": True,
        "lr_decay_every": 20,
        "lr_decay_gamma": 0.9,
        "precision": "f64",
        "method_options": {
            "eps": 1e-8,
            "adam": {"lambda_r": 1.0, "lambda_b": 1.0},
            "lra": {"alpha": 0.1},
            "ntk": {"every": 10, "points": 16},
            "multiadam": {"beta1": 0.99, "beta2": 0.99, "eps": 1e-8, "weight_r": 0.5, "weight_b": 0.5},
            "cagrad": {"c": 0.5},
            "dcgd": {"variant": method.partition(":")[2] or "center"},
            "mconfig": {"beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "variant": "reference"},
        },
        "modsync": {
            "lambda_r": 1.0, "lambda_b": 1.0, "lambda_s": 1e-4, "beta": 0.3, "lr_t": 0.05,
            "lr_t_decay": False, "mode": "full", "rw": "per_unit", "detach_rw": False,
            "rw_max_exponent": 30.0, "route_thresholds": True, "mask_first": True,
            "mask_last": True, "reset_below": 0.01,
        },
    }


def sample_face(pde, cond, n, gen):
    lo = torch.tensor([b[0] for b in pde.bounds])
    hi = torch.tensor([b[1] for b in pde.bounds])
    X = lo + (hi - lo) * torch.rand(n, pde.dim, generator=gen)
    X[:, cond.face_axis] = cond.face_value
    return X


def gen_inputs(pde_name, method, steps, seed, width=16, depth=2, n_res=64, n_face=16, ntk_points=8):
    pde = PDES[pde_name]
    gen = torch.Generator().manual_seed(seed)
    dims = [pde.dim] + [width] * depth + [1]
    theta = []
    for a, b in zip(dims[:-1], dims[1:]):
        std = math.sqrt(2.0 / (a + b))  # Xavier normal, gain 1
        theta += (std * torch.randn(a * b, generator=gen)).tolist() + [0.0] * b
    cfg = default_config(method)
    base = method.partition(":")[0]
    lo = torch.tensor([b[0] for b in pde.bounds])
    hi = torch.tensor([b[1] for b in pde.bounds])
    out_steps = []
    for k in range(steps):
        res = lo + (hi - lo) * torch.rand(n_res, pde.dim, generator=gen)
        conds = []
        for cond in pde.conditions:
            X = sample_face(pde, cond, n_face, gen)
            conds.append({"quantity": cond.quantity, "axis": cond.d1_axis, "points": X.tolist()})
        ntk = None
        if base.endswith("ntk") and k % cfg["method_options"]["ntk"]["every"] == 0:
            bnd = []
            for c in conds:
                for p in c["points"][: max(1, ntk_points // len(conds))]:
                    bnd.append({"quantity": c["quantity"], "axis": c["axis"], "point": p})
            ntk = {"residual": res[:ntk_points].tolist(), "boundary": bnd}
        out_steps.append({"residual": res.tolist(), "conditions": conds, "ntk": ntk})
    ms = None
    if method.startswith("modsync+"):
        masked = list(range(len(dims) - 1))
        n_t = sum(dims[l + 1] for l in masked)
        ms = {
            "masked_layers": masked,
            "t_r0": (0.05 * torch.rand(n_t, generator=gen)).tolist(),
            "t_b0": (0.05 * torch.rand(n_t, generator=gen)).tolist(),
        }
    return {"pde": pde_name, "method": method, "config": cfg, "dims": dims, "theta0": theta,
            "modsync": ms, "steps": out_steps}


def cmd_gen(case_dir, pde, method, steps, seed, sizes):
    import os

    os.makedirs(case_dir, exist_ok=True)
    with open(f"{case_dir}/inputs.json", "w") as f:
        json.dump(gen_inputs(pde, method, steps, seed, **sizes), f)
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="inputs.json -> torch.json")
    r.add_argument("case_dir")
    r.add_argument("--verbose", action="store_true")
    r.add_argument("--mconfig-variant", choices=["library", "spec"], default=None,
                   help="override the case config's method_options.mconfig.variant: second moment of "
                   "ConFIG's fake gradient with a warm-up step (library = reference), or of the "
                   "ConFIG direction itself, no warm-up (spec = literal)")
    r.add_argument("--mconfig-thresholds", choices=["active", "both"], default="active",
                   help="modsync+mconfig: thresholds get the back-propagated loss only (active) "
                   "or both task losses every step (both)")
    c = sub.add_parser("compare", help="ours.json vs torch.json: one line, exit 0 = PASS")
    c.add_argument("case_dir")
    c.add_argument("--verbose", action="store_true")
    g = sub.add_parser("gen", help="synthetic inputs.json for self-tests")
    g.add_argument("case_dir")
    g.add_argument("--pde", required=True, choices=sorted(PDES))
    g.add_argument("--method", required=True)
    g.add_argument("--steps", type=int, default=10)
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--width", type=int, default=16)
    g.add_argument("--depth", type=int, default=2)
    g.add_argument("--n-res", type=int, default=64, help="residual points per step")
    g.add_argument("--n-face", type=int, default=16, help="points per condition set")
    a = ap.parse_args(argv)
    if a.cmd == "run":
        return cmd_run(a.case_dir, a.verbose, a.mconfig_variant, a.mconfig_thresholds)
    if a.cmd == "compare":
        return cmd_compare(a.case_dir, a.verbose)
    sizes = {"width": a.width, "depth": a.depth, "n_res": a.n_res, "n_face": a.n_face}
    return cmd_gen(a.case_dir, a.pde, a.method, a.steps, a.seed, sizes)


if __name__ == "__main__":
    sys.exit(main())
