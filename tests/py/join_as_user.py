"""Joins a LiveKit room as the end user with LiveKit's Python SDK, waits for
the avatar agent (by identity) and for its audio track to arrive, then
leaves. Prints what it saw as JSON.

usage: join_as_user.py <livekit_url> <participant_token> <agent_identity> <timeout_s>
"""

import asyncio
import json
import sys

from livekit import rtc


async def main() -> int:
    url, token, agent_identity, timeout = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
    room = rtc.Room()
    seen = {"agent_seen": False, "audio_track": False}
    got_track = asyncio.Event()

    @room.on("participant_connected")
    def _joined(p: rtc.RemoteParticipant) -> None:
        if p.identity == agent_identity:
            seen["agent_seen"] = True

    @room.on("track_subscribed")
    def _track(track: rtc.Track, _pub, p: rtc.RemoteParticipant) -> None:
        if p.identity == agent_identity and track.kind == rtc.TrackKind.KIND_AUDIO:
            seen["audio_track"] = True
            got_track.set()

    await room.connect(url, token)
    if any(p.identity == agent_identity for p in room.remote_participants.values()):
        seen["agent_seen"] = True
    try:
        await asyncio.wait_for(got_track.wait(), timeout)
    except asyncio.TimeoutError:
        pass
    await room.disconnect()
    print(json.dumps(seen), flush=True)
    return 0 if seen["audio_track"] else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
