import os
import sys
import warnings

# helpers.py and shapes.py; appended, so that a test folder (tests/datasets) never hides a library
sys.path.append(os.path.dirname(__file__))
# W&B stays off in tests unless a test turns it on (offline) itself.
os.environ["WANDB_MODE"] = "disabled"
warnings.filterwarnings("ignore", ".*isinstance\\(treespec, LeafSpec\\).*")
