import os
import sys
import warnings

sys.path.insert(0, os.path.dirname(__file__))
os.environ.setdefault("WANDB_MODE", "offline")
warnings.filterwarnings("ignore", ".*isinstance\\(treespec, LeafSpec\\).*")
