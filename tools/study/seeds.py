"""The study's seed folders (`<sweep>/seed<N>/`), shared by the tools in this
folder (curves.py, margins.py)."""
import glob
import os
import re


def seed_no(path):
    """N of a `.../seed<N>/...` path."""
    return int(re.search(r"seed(\d+)", path).group(1))


def seed_dirs(sweep_dir, record="test*.json"):
    """The seed folders of one sweep that hold `record` (a glob; default: any
    test record, so a seed being extended counts), by seed, with a trailing /."""
    dirs = glob.glob(os.path.join(sweep_dir, "seed*/"))
    return [d for d in sorted(dirs, key=seed_no) if glob.glob(os.path.join(d, record))]
