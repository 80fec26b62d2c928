"""DOCS_DIR kept in step with the index: scanned at start, then watched with `watchfiles`.

    folder = DocumentFolder(settings.documents_dir, library)
    await folder.scan()                    # new or changed files queued, vanished ones removed
    task = asyncio.create_task(folder.watch())   # the lifespan owns and cancels it

A file is named in the index by its path relative to the folder. Hidden files, editors'
temporary files and types we do not read are left alone; a file of a type we read that turns
out bad is indexed as `failed`, with the reason.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from app.documents.library import Library
from app.documents.parse import SUPPORTED, extension

log = logging.getLogger("app.documents")
DEBOUNCE_MS = 200
RETRY_SECONDS = 5.0


def wanted(relative: str) -> bool:
    """Whether a path under the folder is a document to index.

        >>> wanted("manual.pdf"), wanted("lore/world.md"), wanted(".~lock.a.docx#"), wanted("~$a.docx"), wanted("a.exe")
        (True, True, False, False, False)
    """
    parts = Path(relative).parts
    return bool(parts) and not any(p.startswith((".", "~")) for p in parts) and extension(relative) in SUPPORTED


class DocumentFolder:
    def __init__(self, folder: Path, library: Library) -> None:
        self.folder = folder
        self.library = library

    def relative(self, path: Path) -> str | None:
        try:
            return path.resolve().relative_to(self.folder.resolve()).as_posix()
        except ValueError:
            return None

    async def scan(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        present = set()
        for path in sorted(self.folder.rglob("*")):
            relative = self.relative(path)
            if relative and path.is_file() and wanted(relative):
                present.add(relative)
                await self.changed(path)
        for relative in set(await self.library.folder_paths()) - present:
            await self.library.remove_folder_file(relative)

    async def changed(self, path: Path) -> None:
        """A file appeared, changed or went away."""
        relative = self.relative(path)
        if relative is None or not wanted(relative):
            return
        try:
            if path.is_file():
                await self.library.add_folder_file(path, relative)
                return
        except OSError as exc:  # gone between the event and the read: handled as removed
            log.info("%s could not be read (%s)", relative, exc)
        await self.library.remove_folder_file(relative)

    async def watch(self) -> None:
        """Follow the folder until cancelled; if watching fails (the folder was removed, the
        system's watch limit), scan again after a pause and follow it anew."""
        while True:
            try:
                await self._follow()
            except Exception:  # noqa: BLE001 - the watch is retried, never lost
                log.exception("watching %s failed; scanning again in %.0f s", self.folder, RETRY_SECONDS)
            await asyncio.sleep(RETRY_SECONDS)
            try:
                await self.scan()
            except OSError:
                log.exception("scanning %s failed", self.folder)

    async def _follow(self) -> None:
        from watchfiles import awatch

        async for changes in awatch(self.folder, debounce=DEBOUNCE_MS, step=50, recursive=True):
            for path in sorted({p for _, p in changes}):
                await self.changed(Path(path))
