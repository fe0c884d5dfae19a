"""Bare Pillow baseline for `npm run bench -- ingest`: one Python process, every .jpg member of the given
WebDataset shards read into memory first (not timed), then `Image.open(BytesIO(b)).load()` + sha256 of
each, one after another (img2dataset's decode stack, one process). Prints one JSON line."""
import hashlib
import io
import json
import sys
import tarfile
import time

import PIL
from PIL import Image

images = []
for shard in sys.argv[1:]:
    with tarfile.open(shard) as tar:
        for member in tar:
            if member.name.endswith(".jpg"):
                images.append(tar.extractfile(member).read())

started = time.perf_counter()
cpu = time.process_time()
for data in images:
    hashlib.sha256(data).hexdigest()
    with Image.open(io.BytesIO(data)) as image:
        image.load()
elapsed = time.perf_counter() - started
cpu_ms = (time.process_time() - cpu) * 1000 / len(images)
print(json.dumps({"images": len(images), "pillow": len(images) / elapsed, "cpuMsPerImage": cpu_ms, "version": PIL.__version__}))
