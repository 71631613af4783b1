"""``python -m streams.cli``: the ``lapse`` command line without the installed script."""

from streams.cli import main

if __name__ == "__main__":
    main()
