"""`python -m pipelines.keywords VERB ...` == `lstm-apps keywords VERB ...`."""
import sys

from lstm_apps.cli import main

sys.exit(main(["keywords", *sys.argv[1:]]))
