"""Writes one golden file of the differential test: PyTorch's trajectory of a fidelity case,
which `trainer-core/tests/fidelity_golden.rs` replays against trainer-core on every `cargo test`
(CI has no PyTorch). Called by `bench/fidelity.sh --golden`.

Usage: python fidelity_golden.py CASE_DIR LABEL OUT_FILE   (gzipped JSON; LABEL e.g. dcgd:proj)

It compares the case itself (bench/fidelity_torch.py's `compare`) and refuses, exit 1 with a
message naming the case, to write a golden that does not hold over every one of its steps: a
failing comparison, a mask or branch decided differently at any step (record the case over the
steps before it instead: bench/fidelity.sh does), or step lists shorter than the case. So every
golden has compare_until == steps, and the replay compares all of it.

Kept per step: the scalars and ‖update‖; the whole update vector of step 0 only, and θ and the
thresholds after the last step (a few MB for all cases). The fingerprint of the inputs lets the
Rust test tell "trainer-core's sampler or initialisation changed: regenerate" from a mismatch.
"""

import gzip
import json
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fidelity_torch  # noqa: E402


def load(case_dir, name):
    with open(f"{case_dir}/{name}") as f:
        return json.load(f)


def main() -> int:
    case_dir, label, out_file = sys.argv[1:4]
    try:
        inputs = load(case_dir, "inputs.json")
        ours = load(case_dir, "ours.json")
        torch_run = load(case_dir, "torch.json")
    except (OSError, ValueError) as e:
        print(f"fidelity_golden.py: not writing {out_file} for {label} ({case_dir}): {e}", file=sys.stderr)
        return 1
    steps = len(inputs["steps"])
    line, passed = fidelity_torch.compare(ours, torch_run, inputs)
    diverge = line.split()[5]
    problems = []
    if steps == 0:
        problems.append("the case has no steps")
    if len(torch_run["steps"]) != steps or len(ours["steps"]) != steps:
        problems.append(
            f"step lists of {len(ours['steps'])} (ours) and {len(torch_run['steps'])} (torch) "
            f"entries for a case of {steps} steps"
        )
    if not passed:
        problems.append(f"the comparison fails: {line}")
    if diverge != "-":
        problems.append(
            f"the two implementations decide a mask or branch differently from step {diverge} "
            "on (a golden must hold over all its steps: record it over the steps before that)"
        )
    if problems:
        print(
            f"fidelity_golden.py: not writing {out_file} for {inputs['pde']} {label} "
            f"({case_dir}): " + "; ".join(problems),
            file=sys.stderr,
        )
        return 1
    points_sum = 0.0
    for step in inputs["steps"]:
        points_sum += sum(sum(p) for p in step["residual"])
        for c in step["conditions"]:
            points_sum += sum(sum(p) for p in c["points"])
    keep = ("loss_r", "loss_b", "norm_g_r", "norm_g_b", "cos", "skipped", "masks", "resets")
    golden = {
        "label": label,
        "config": inputs["config"],
        "steps": steps,
        # Kept for the format: the replay asserts it equals `steps` (never a partial comparison).
        "compare_until": steps,
        "fingerprint": {
            "theta0_sum": math.fsum(inputs["theta0"]),
            "points_sum": points_sum,
        },
        "torch": {
            "steps": [
                {**{k: s[k] for k in keep}, "update_norm": math.sqrt(math.fsum(u * u for u in s["update"]))}
                for s in torch_run["steps"]
            ],
            "update0": torch_run["steps"][0]["update"],
            "theta": torch_run["theta"],
            "t_r": torch_run.get("t_r"),
            "t_b": torch_run.get("t_b"),
        },
    }
    # gzip (mtime 0, so the same trajectory gives the same bytes): 3.4 MB for all cases instead of
    # 8.8 MB of JSON digits.
    with open(out_file, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as f:
        f.write(json.dumps(golden, separators=(",", ":")).encode() + b"\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
