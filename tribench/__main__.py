"""``python -m tribench``: the same command as the ``tribench`` console script."""

from tribench.cli import main

if __name__ == "__main__":
    main()
