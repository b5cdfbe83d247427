"""`python -m pipelines.translation VERB ...` == `lstm-apps translation VERB ...`."""
import sys

from lstm_apps.cli import main

sys.exit(main(["translation", *sys.argv[1:]]))
