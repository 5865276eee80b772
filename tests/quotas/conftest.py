from tests.files.conftest import vfolder  # the same throwaway vfolder as the files tests

__all__ = ["vfolder"]
