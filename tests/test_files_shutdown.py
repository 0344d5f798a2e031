"""Stopping the files service waits for a running file or image job off the event loop (issue 17:
no blocking work on the loop; Storage.aclose does the same for the database threads)."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from aurora.services.files.service import Files
from aurora.settings import Settings
from aurora.storage.database import Storage, open_database


async def test_stop_waits_for_a_running_image_job_without_stalling_the_loop(settings: Settings,
                                                                           tmp_path: Path) -> None:
    storage = Storage(open_database(settings.database_url, sqlite_synchronous="NORMAL", base_dir=tmp_path), threads=1)
    files = Files(settings, storage)
    release = threading.Event()
    job = files._images.submit(release.wait, 5)  # a thumbnail still being made at shutdown
    try:
        stopping = asyncio.ensure_future(files.stop())
        await asyncio.sleep(0.05)
        # The loop ran this coroutine while stop() waits for the job: stop is still pending. (Shut down
        # on the loop, the wait blocked the loop itself and stop() had finished before this line ran.)
        assert not stopping.done()
        release.set()
        await asyncio.wait_for(stopping, 30)
        assert job.done() and job.result() is True  # the running job finished; nothing was cut off
    finally:
        release.set()
        await storage.aclose()
