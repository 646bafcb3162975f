"""``python -m segdice``: the same command as the ``segdice`` console script."""

from segdice.cli import main

if __name__ == "__main__":
    main()
