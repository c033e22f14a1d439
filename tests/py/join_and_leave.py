"""Joins a LiveKit room as the end user with LiveKit's Python SDK, stays
for a moment, then leaves (what a user closing the tab does).

usage: join_and_leave.py <livekit_url> <participant_token> <stay_s>
"""

import asyncio
import sys

from livekit import rtc


async def main() -> int:
    url, token, stay = sys.argv[1], sys.argv[2], float(sys.argv[3])
    room = rtc.Room()
    await room.connect(url, token)
    await asyncio.sleep(stay)
    await room.disconnect()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
