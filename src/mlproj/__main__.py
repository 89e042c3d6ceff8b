"""``python -m mlproj`` is the same as the ``mlproj`` command."""

from mlproj.cli.entry import main

if __name__ == "__main__":
    main()
