"""``python -m physamp`` (and ``torchrun --nproc_per_node K -m physamp ...``): the command line."""

from physamp.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
