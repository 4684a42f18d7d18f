"""Shared fixtures. TensorFlow must be quiet before anything imports it."""
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # course.py lives at the top of the repo
    sys.path.insert(0, str(ROOT))
