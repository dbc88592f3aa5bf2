"""Exact on-disk state of folders and stores: sha256 of every file, to prove nothing changed."""

from __future__ import annotations

import hashlib
from pathlib import Path


def file_checksums(root: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file under ``root``; a failed comparison names the file."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(Path(root).rglob("*"))
        if p.is_file()
    }


def tree_checksum(root: Path) -> str:
    """One sha256 over every file name and content under ``root`` (a store's exact state)."""
    digest = hashlib.sha256()
    for name, checksum in file_checksums(root).items():
        digest.update(f"{name}\0{checksum}\n".encode())
    return digest.hexdigest()
