"""A Python SDK worker for the drain test: attaches, then prints how many
times it attached again, every 100 ms, until killed."""

import asyncio
import os
import sys

from lobby_worker import Worker


async def main() -> None:
    with open(os.environ["LOBBY_WORKER_CA_FILE"], "rb") as f:
        ca = f.read()
    worker = Worker(
        os.environ["LOBBY_WORKERS_URL"],
        os.environ["LOBBY_WORKER_KEY"],
        os.environ["WORKER_ID"],
        capacity=2,
        root_certificates=ca,
    )
    await worker.attach()
    print("attached", flush=True)
    while True:
        print(f"reconnects={worker.reconnects}", flush=True)
        await asyncio.sleep(0.1)


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
