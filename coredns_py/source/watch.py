"""Watching the manifests folder (watchdog) and telling the server.

The watcher only says "something changed"; the source works out what, by
comparing each file's (mtime, size, inode) with what it parsed last.  That
keeps missed or merged events harmless: any event triggers a rescan, and a
rescan re-parses only files that really changed.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Callable

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

log = logging.getLogger("coredns_py.reload")


class _Handler(FileSystemEventHandler):
    def __init__(self, callback: Callable[[], None], wanted: Callable[[str], bool]):
        self.callback = callback
        self.wanted = wanted

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in ("opened", "closed_no_write"):
            return  # reads (our own included) change nothing
        paths = [event.src_path, getattr(event, "dest_path", "") or ""]
        if event.is_directory or any(p and self.wanted(os.fsdecode(p)) for p in paths):
            self.callback()


class Watcher:
    """Calls ``callback()`` when a file under ``root`` for which ``wanted(path)``
    holds (or any folder) is created, changed, moved or deleted."""

    def __init__(self, root: Path, callback: Callable[[], None],
                 wanted: Callable[[str], bool]):
        self.root = Path(root)
        self.observer = Observer()
        self.observer.daemon = True
        self._handler = _Handler(callback, wanted)
        self.observer.schedule(self._handler, str(self.root), recursive=True)
        self._followed: dict[Path, object] = {}  # symlinked folder -> its watch

    def follow(self, folders) -> None:
        """Also watch these folders (reached through symlinks, outside the
        root's own tree, which inotify does not follow); stop watching the
        ones no longer listed."""
        wanted = set(folders)
        for path in list(self._followed):
            if path not in wanted:
                try:
                    self.observer.unschedule(self._followed.pop(path))
                except (KeyError, OSError):
                    pass
        for path in sorted(wanted - set(self._followed)):
            try:
                # The folder itself: a watch on the link would watch the link.
                self._followed[path] = self.observer.schedule(
                    self._handler, os.path.realpath(path), recursive=True)
            except OSError as exc:
                log.error("cannot watch %s (%s): changes there will not be picked up",
                          path, exc)

    def start(self) -> None:
        try:
            self.observer.start()
        except OSError as exc:
            # Out of inotify watches, say: serve what was loaded, without reloads.
            log.error("cannot watch %s (%s): changes will not be picked up", self.root, exc)

    def stop(self) -> None:
        try:
            self.observer.stop()
            self.observer.join(timeout=2)
        except RuntimeError:
            pass
