"""Writes one golden file of the differential test: PyTorch's trajectory of a fidelity case,
which `trainer-core/tests/fidelity_golden.rs` replays against trainer-core on every `cargo test`
(CI has no PyTorch). Called by `bench/fidelity.sh --golden`.

Usage: python fidelity_golden.py CASE_DIR "COMPARE_LINE" OUT_FILE   (gzipped JSON)

Kept per step: the scalars and ‖update‖; the whole update vector of step 0 only, and θ and the
thresholds after the last step (a few MB for all cases). The fingerprint of the inputs lets the
Rust test tell "trainer-core's sampler or initialisation changed: regenerate" from a mismatch.
"""

import gzip
import json
import math
import sys


def main() -> None:
    case_dir, line, out_file = sys.argv[1:4]
    with open(f"{case_dir}/inputs.json") as f:
        inputs = json.load(f)
    with open(f"{case_dir}/torch.json") as f:
        torch_run = json.load(f)
    fields = line.split()
    diverge = fields[5]
    steps = len(inputs["steps"])
    points_sum = 0.0
    for step in inputs["steps"]:
        points_sum += sum(sum(p) for p in step["residual"])
        for c in step["conditions"]:
            points_sum += sum(sum(p) for p in c["points"])
    keep = ("loss_r", "loss_b", "norm_g_r", "norm_g_b", "cos", "skipped", "masks", "resets")
    golden = {
        "label": fields[1],
        "config": inputs["config"],
        "steps": steps,
        "compare_until": steps if diverge == "-" else int(diverge),
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


if __name__ == "__main__":
    main()
