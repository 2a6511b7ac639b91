import os
import sys
import warnings

sys.path.insert(0, os.path.dirname(__file__))
# W&B stays off in tests unless a test turns it on (offline) itself.
os.environ["WANDB_MODE"] = "disabled"
warnings.filterwarnings("ignore", ".*isinstance\\(treespec, LeafSpec\\).*")
