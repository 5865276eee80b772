"""What is in a vfolder: the one owner of writes (commit of staged files, with the ledger) and
of reads."""
