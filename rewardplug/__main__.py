"""``python -m rewardplug``: the command line, from whichever environment runs it."""

from rewardplug.cli import main

if __name__ == "__main__":
    main()
