"""What one sync or restore is asked to do, as the runner holds it."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Optional

from .protocol import DEFAULT_FOLDER, SyncOptions, check_options


@dataclass
class Request:
    """What to copy. ``mode`` "backup": content root -> Drive folder/FOLDER; "restore": the reverse."""

    mode: str
    content: Path
    drive: Path
    folder: str = DEFAULT_FOLDER
    paths: list[str] = field(default_factory=lambda: ["."])
    excludes: list[str] = field(default_factory=list)
    delete: bool = False
    dry_run: bool = False
    force: bool = False
    bwlimit: int = 0  # KiB/s, 0 = no limit
    home: Optional[Path] = None  # a full backup also keeps this home's editor folders on Drive (``editors``)

    @classmethod
    def of(cls, options: SyncOptions, content: Path, drive: Path, home: Optional[Path] = None) -> Request:
        """The request for OPTIONS (the laptop's) on this runtime's content root, Drive folder and home."""
        return cls(mode=options.mode, content=content, drive=drive, folder=options.folder,
                   paths=list(options.paths) or ["."], excludes=list(options.excludes), delete=options.delete,
                   dry_run=options.dry_run, force=options.force, bwlimit=options.bwlimit, home=home)

    def checked(self) -> Request:
        """This request with absolute roots and clean folder and paths; SyncRefused for what no run may take."""
        folder, paths = check_options(self.mode, self.folder, self.excludes, self.paths)
        return replace(self, content=self.content.absolute(), drive=self.drive.absolute(), folder=folder,
                       paths=paths, excludes=list(self.excludes),
                       home=self.home.absolute() if self.home is not None else None)

    @property
    def keeps_editors(self) -> bool:
        """A full backup (no PATH) carries the editor folders too; a backup of some paths leaves them alone."""
        return self.mode == "backup" and self.home is not None and self.paths == ["."]

    @property
    def source_root(self) -> Path:
        return self.content if self.mode == "backup" else self.drive / self.folder

    @property
    def dest_root(self) -> Path:
        return self.drive / self.folder if self.mode == "backup" else self.content


def _inside(child: Path, parent: Path) -> bool:
    child_s, parent_s = os.path.realpath(child), os.path.realpath(parent)
    return os.path.commonpath([child_s, parent_s]) == parent_s
