# The same throwaway vfolder as the files tests.
from tests.files.conftest import vfolder

__all__ = ["vfolder"]
