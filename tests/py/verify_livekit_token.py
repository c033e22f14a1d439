"""Verifies a LiveKit join token with LiveKit's own Python SDK (PyPI
`livekit-api`), so a test proves the token is accepted by LiveKit's code and
not only by ours. Prints the verified claims as JSON; exits 1 on rejection.

usage: verify_livekit_token.py <api_key> <api_secret> <token>
"""

import json
import sys

from livekit.api import TokenVerifier


def main() -> int:
    api_key, api_secret, token = sys.argv[1:4]
    try:
        claims = TokenVerifier(api_key, api_secret).verify(token)
    except Exception as e:  # the SDK raises jwt errors of several kinds
        print(json.dumps({"verified": False, "error": str(e)}))
        return 1
    video = claims.video
    print(
        json.dumps(
            {
                "verified": True,
                "identity": claims.identity,
                "name": claims.name,
                "room": video.room if video else None,
                "room_join": bool(video and video.room_join),
                "room_admin": bool(video and video.room_admin),
                "room_create": bool(video and video.room_create),
                "agent": bool(video and video.agent),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
