"""`python -m pipelines.language_model VERB ...` == `lstm-apps language-model VERB ...`."""
import sys

from lstm_apps.cli import main

sys.exit(main(["language-model", *sys.argv[1:]]))
