"""Are later text-query steps a refinement or a posterior sample? Zero-shot accuracy of one model from:

  1 step             the first step's prediction from pure noise (the model's single best guess of e0)
  S steps, one draw  DDIM (deterministic) and ancestral DDPM (stochastic), one noise seed
  S steps, K draws   the mean of K unit-norm DDPM results (seeds 0..K-1), renormalised

If later steps only draw one of the captions that fit the image, a single draw ranks labels worse than the first
step's guess (most where the model is unsure), and the mean of many draws climbs back towards the first step.

    python benchmarks/query_posterior.py --model runs/query_study/g16 --data DIR --labels world_colours
"""

from __future__ import annotations

import argparse
import json

import torch
import torch.nn.functional as F

from diffdis.eval.sweep import load_classify_data
from diffdis.pipeline import DiffDisPipeline
from diffdis.quiet import quiet_libraries


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--data", required=True, help="A --data spelling of diffdis eval (e.g. a folder).")
    parser.add_argument("--labels", default="world_colours")
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--draws", type=int, default=8)
    args = parser.parse_args()
    quiet_libraries()
    torch.manual_seed(0)
    pipe = DiffDisPipeline.from_pretrained(args.model)
    data = load_classify_data(args.data, args.labels, drop_unknown=True)
    images = data.dataset.images(data.rows)
    classifier = pipe.zero_shot_classifier(data.labels, data.templates)
    targets = torch.tensor(data.targets)

    def accuracy(queries: torch.Tensor) -> float:
        return (queries.cpu() @ classifier.cpu().T).argmax(1).eq(targets).float().mean().item()

    def queries(steps: int, scheduler: str, seed: int) -> torch.Tensor:
        return pipe.image_queries(images, num_inference_steps=steps, scheduler=scheduler, seed=seed).cpu()

    draws = [queries(args.steps, "ddpm", seed) for seed in range(args.draws)]
    result = {
        "model": args.model,
        "labels": args.labels,
        "n": len(targets),
        "steps": args.steps,
        "acc1_1_step": accuracy(queries(1, "ddim", 0)),
        f"acc1_ddim_{args.steps}": accuracy(queries(args.steps, "ddim", 0)),
        f"acc1_ddpm_{args.steps}_one_draw_mean_over_seeds": sum(accuracy(q) for q in draws) / len(draws),
        f"acc1_ddpm_{args.steps}_mean_of_{args.draws}_draws": accuracy(F.normalize(torch.stack(draws).mean(0), dim=-1)),
    }
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
