"""`python -m srft ...`: the same as the `srft` command."""

from srft.cli import main

if __name__ == "__main__":
    main()
