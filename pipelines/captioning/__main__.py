"""`python -m pipelines.captioning VERB ...` == `lstm-apps captioning VERB ...`."""
import sys

from lstm_apps.cli import main

sys.exit(main(["captioning", *sys.argv[1:]]))
