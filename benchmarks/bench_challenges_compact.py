"""Compact models (notebook 10, section 6): the joint model's image tower against its distilled
student, each in float32 and int8, with more latency repeats than the notebook.

Protocol: the teacher is the committed ``joint_world``'s image tower (SmallCNN + ViT block +
projection, 64 px input); the student the committed ``joint_student`` (distilled on fresh scenes,
``World(n=4000, seed=1)``); int8 is :func:`mmkit.challenges.compact.quantize_int8`: static
post-training quantisation in FX graph mode (x86 backend), calibrated on 128 fresh scenes
(seed 3), the teacher's attention blocks left in float with dynamically quantised linear layers.
Size: bytes of ``torch.save(state_dict)``; latency: median wall time per image on random input,
one torch thread, batch 1 and batch 64, after a warm-up; quality: text -> image R@1 and mAP on
the evaluation world's test split (441 images, 2,205 captions) with the joint model's own text
tower for the queries. Also the embeddings' mean / min cosine between each int8 tower and its
float32 original on the test images.

    .venv/bin/python benchmarks/bench_challenges_compact.py [--repeats 25] [--threads 1]
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> int:
    import torch

    from mmkit import checkpoints
    from mmkit.challenges import compact as C

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=25)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--calibration", type=int, default=128)
    ap.add_argument("--json", default=str(RESULTS / "challenges_compact.json"))
    args = ap.parse_args()
    torch.set_num_threads(2)

    t0 = time.perf_counter()
    load_before = [round(x, 2) for x in os.getloadavg()]
    joint, jm = checkpoints.load("joint_world", progress=False)
    student, sm = checkpoints.load("joint_student", progress=False)
    table = C.compare_compact(repeats=args.repeats, calibration=args.calibration,
                              threads=args.threads, student=student, joint=joint)
    # agreement of each int8 tower with its float original on the test images
    images = C.test_images()
    calib = C.calibration_images(args.calibration)
    agreement = {}
    for name, tower in (("full", C.teacher_tower(joint)), ("student", student)):
        a = C.embed_with(tower, images)
        b = C.embed_with(C.quantize_int8(tower, calib), images)
        cos = (a * b).sum(1)
        agreement[name] = {"mean_cosine": float(cos.mean()), "min_cosine": float(cos.min())}
    results = {
        "table": table, "int8_vs_fp32": agreement,
        "protocol": {"repeats_b64": args.repeats, "repeats_b1": 4 * args.repeats,
                     "threads": args.threads, "calibration_scenes": args.calibration,
                     "engine": torch.backends.quantized.engine,
                     "teacher_sha256": jm["sha256"], "student_sha256": sm["sha256"]},
        "machine": {"cpus": os.cpu_count(), "loadavg_before": load_before,
                    "loadavg_after": [round(x, 2) for x in os.getloadavg()],
                    "torch": torch.__version__.split("+")[0]},
        "seconds": round(time.perf_counter() - t0, 1),
    }
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")

    print("| model | parameters | size MB | ms/image (batch 1) | ms/image (batch 64) "
          "| t2i R@1 | mAP |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, row in table.items():
        print(f"| {name} | {int(row['parameters']):,} | {row['size MB']:.3f} | "
              f"{row['ms/image b1']:.2f} | {row['ms/image b64']:.3f} | {row['t2i R@1']:.3f} | "
              f"{row['mAP']:.3f} |")
    for name, agr in agreement.items():
        print(f"{name} int8 vs fp32: mean cosine {agr['mean_cosine']:.4f}, "
              f"min {agr['min_cosine']:.4f}")
    print(f"load average before/after: {load_before} / {results['machine']['loadavg_after']}; "
          f"{results['seconds']:.0f} s")
    return 0 if np.isfinite([r["t2i R@1"] for r in table.values()]).all() else 1


if __name__ == "__main__":
    raise SystemExit(main())
