import os
from pathlib import Path

import pytest
from hypothesis import settings

settings.register_profile("ci", max_examples=60, deadline=None, derandomize=True)
settings.register_profile("dev", max_examples=200, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

# The registry of files cachesim wrote (`cachesim.files.registry_path`): the suite's own, not the
# user's (subprocesses inherit it)
if "CACHESIM_STATE_DIR" not in os.environ:
    import tempfile
    os.environ["CACHESIM_STATE_DIR"] = tempfile.mkdtemp(prefix="cachesim-state-")

ROOT = Path(__file__).resolve().parent.parent
# The suite's data ships with the repository (tests/data/README.md names each file's source,
# size and sha256); nothing outside the checkout is read.
DATA = ROOT / "tests" / "data"
DATA_FILES = ("criteo/kaggle_train_head10k.tsv", "avazu/train_head10k.csv",
              "cloudphysics/cloudPhysicsIO.oracleGeneral.bin", "cloudphysics/cloudPhysicsIO.txt",
              "cloudphysics/expected.json")


def check_data(root: Path = DATA) -> Path:
    """`root` when it holds every test data file; else fail the test, naming what is missing."""
    missing = [name for name in DATA_FILES if not (root / name).is_file()]
    if missing:
        pytest.fail(f"test data missing under {root}: {', '.join(missing)}; it ships with the "
                    f"repository (tests/data/README.md names each file's source): restore it "
                    f"from git", pytrace=False)
    return root


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The folder of the suite's data files (tests/data); a missing file fails the test."""
    return check_data()
