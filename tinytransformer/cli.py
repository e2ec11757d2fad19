"""The ``tinytransformer`` command: argument parsing, then a call into the library."""

import argparse
import sys

import numpy as np


def _demo(args):
    """Fit y = sin(x) with a two-layer network, gradients from autograd, plain SGD."""
    import tinytransformer as tt

    tt.manual_seed(args.seed)
    rng = tt.get_rng()
    x = rng.uniform(-3, 3, (256, 1)).astype(np.float32)
    y = np.sin(x)
    model = tt.nn.Sequential(tt.nn.Linear(1, 32), tt.nn.Linear(32, 1))
    hidden, out = model[0], model[1]
    print("tinytransformer demo: fit sin(x) with a 1-32-1 tanh network, autograd + SGD")
    for step in range(args.steps + 1):
        pred = out(hidden(tt.Tensor(x)).tanh())
        loss = ((pred - tt.Tensor(y)) ** 2).mean()
        model.zero_grad()
        loss.backward()
        for p in model.parameters():
            p.data -= args.lr * p.grad
        if step % (args.steps // 10) == 0:
            print(f"step {step:5d}  mse {loss.item():.5f}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tinytransformer", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="a short autograd demonstration")
    demo.add_argument("--steps", type=int, default=2000, help="SGD steps (default 2000)")
    demo.add_argument("--lr", type=float, default=0.1, help="learning rate (default 0.1)")
    demo.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    demo.set_defaults(func=_demo)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
