"""An example GPU worker: takes Lobby jobs, joins each LiveKit room with the
agent's token using LiveKit's Python SDK, publishes an audio track (a tone,
standing in for the avatar's voice), and reports the session's end once no
user has been in the room for SOLO_TIMEOUT_SECONDS (the way Tavus's
participant_left_timeout works).

Settings: LOBBY_WORKERS_URL (the workers' door), LOBBY_WORKER_CA_FILE (its
CA, when private), LOBBY_WORKER_KEY (its wkr_ key), WORKER_ID (the id the
key is for), WORKER_REGION, WORKER_CAPACITY, SOLO_TIMEOUT_SECONDS, and
LOBBY_SESSION_WORKERS_URL (the session service's door: when set, the worker
writes its greeting and token usage into the session's record and, at the
session's end, uploads its transcript and the audio it published).
"""

import asyncio
import io
import logging
import math
import os
import sys
import time
import wave

from livekit import rtc

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from lobby_worker import Job, Records, Worker  # noqa: E402

SAMPLE_RATE = 48000
FRAME_SAMPLES = SAMPLE_RATE // 100  # 10 ms

log = logging.getLogger("avatar-worker")


# The recording kept for upload stops growing after this long.
MAX_RECORDED_SECONDS = 600


async def speak(source: rtc.AudioSource, stop: asyncio.Event, recording: bytearray) -> None:
    """A 440 Hz tone in 10 ms frames until told to stop; what is published
    is also kept in `recording` (16-bit PCM) for the session's audio."""
    phase = 0
    limit = MAX_RECORDED_SECONDS * SAMPLE_RATE * 2
    while not stop.is_set():
        frame = rtc.AudioFrame.create(SAMPLE_RATE, 1, FRAME_SAMPLES)
        samples = frame.data
        for i in range(FRAME_SAMPLES):
            samples[i] = int(8000 * math.sin(2 * math.pi * 440 * (phase + i) / SAMPLE_RATE))
        phase += FRAME_SAMPLES
        if len(recording) < limit:
            recording.extend(samples.tobytes())
        await source.capture_frame(frame)


def wav_bytes(pcm: bytes) -> bytes:
    """16-bit mono PCM at SAMPLE_RATE as a WAV file."""
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        w.writeframes(pcm)
    return out.getvalue()


GREETING = "Hello, I am your avatar."


async def run_session(
    worker: Worker, records: Records | None, job: Job, solo_timeout: float
) -> None:
    room = rtc.Room()
    stop = asyncio.Event()
    users = set()

    def is_user(p: rtc.RemoteParticipant) -> bool:
        return p.identity != job.agent_identity

    @room.on("participant_connected")
    def _joined(p: rtc.RemoteParticipant) -> None:
        if is_user(p):
            users.add(p.identity)

    @room.on("participant_disconnected")
    def _left(p: rtc.RemoteParticipant) -> None:
        users.discard(p.identity)

    @room.on("disconnected")
    def _closed(*_args) -> None:
        stop.set()

    await room.connect(job.room_url, job.agent_token)
    users.update(p.identity for p in room.remote_participants.values() if is_user(p))
    source = rtc.AudioSource(SAMPLE_RATE, 1)
    track = rtc.LocalAudioTrack.create_audio_track("avatar-voice", source)
    await room.local_participant.publish_track(
        track, rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
    )
    log.info("session %s: joined %s as %s", job.session_id, job.room_url, job.agent_identity)
    transcript = [
        {"role": "assistant", "content": GREETING, "timestamp_ms": int(time.time() * 1000)}
    ]
    if records is not None:
        # What the agent said, for the session's record (sealed at rest).
        await records.append_messages(
            job.session_id,
            [{"role": "assistant", "content": GREETING}],
            completion_tokens=len(GREETING.split()),
        )
    recording = bytearray()
    voice = asyncio.create_task(speak(source, stop, recording))
    alone_since = None
    seen_user = False
    reason = "room closed"
    while not stop.is_set():
        await asyncio.sleep(0.2)
        if users:
            seen_user, alone_since = True, None
        elif seen_user:
            alone_since = alone_since or asyncio.get_running_loop().time()
            if asyncio.get_running_loop().time() - alone_since >= solo_timeout:
                reason = "agent alone past the solo timeout"
                break
    stop.set()
    await voice
    await room.disconnect()
    await worker.session_ended(job.session_id, reason)
    log.info("session %s ended: %s", job.session_id, reason)
    if records is not None:
        # The session's artifacts: seed 003 serves them, and summarizes
        # the transcript.
        transcript.append(
            {
                "role": "assistant",
                "content": f"The session is over ({reason}). Goodbye!",
                "timestamp_ms": int(time.time() * 1000),
            }
        )
        size = await records.upload_transcript(job.session_id, {"messages": transcript})
        audio = await records.upload_audio(job.session_id, wav_bytes(bytes(recording)))
        log.info("session %s: uploaded transcript (%d bytes) and audio (%d bytes)", job.session_id, size, audio)
        print(f"artifacts uploaded {job.session_id}", flush=True)


async def main() -> None:
    logging.basicConfig(level=logging.INFO)
    capacity = int(os.environ.get("WORKER_CAPACITY", "2"))
    solo_timeout = float(os.environ.get("SOLO_TIMEOUT_SECONDS", "5"))
    ca_file = os.environ.get("LOBBY_WORKER_CA_FILE")
    root_certificates = open(ca_file, "rb").read() if ca_file else None
    worker = Worker(
        os.environ.get("LOBBY_WORKERS_URL", "https://127.0.0.1:50055"),
        os.environ["LOBBY_WORKER_KEY"],
        os.environ.get("WORKER_ID", "python-avatar-worker"),
        region=os.environ.get("WORKER_REGION", "local"),
        capacity=capacity,
        root_certificates=root_certificates,
    )
    records_url = os.environ.get("LOBBY_SESSION_WORKERS_URL")
    records = (
        Records(records_url, os.environ["LOBBY_WORKER_KEY"], root_certificates=root_certificates)
        if records_url
        else None
    )
    await worker.attach()
    print("worker attached", flush=True)
    sessions = set()
    async for job in worker.jobs():
        if worker.load >= capacity:
            await worker.reject(job.job_id, "at capacity")
            continue
        await worker.accept(job.job_id)
        task = asyncio.create_task(run_session(worker, records, job, solo_timeout))
        sessions.add(task)
        task.add_done_callback(sessions.discard)


if __name__ == "__main__":
    asyncio.run(main())
