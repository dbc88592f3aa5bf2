"""Operations at scale: incremental updates, continental planning, HPC job scripts."""
