"""A worker's half of the stream (register, heartbeat, take jobs, answer),
and what it writes into the sessions it runs (records and artifacts)."""

from __future__ import annotations

import asyncio
import collections
import io
import time
import json
import os
from typing import Any, AsyncIterator, BinaryIO, Optional, Union
from urllib.parse import urlparse

import grpc

from ._proto import workers_pb2 as pb
from ._proto import workers_pb2_grpc as pb_grpc

Job = pb.JobAssignment


class WorkerError(RuntimeError):
    """The rooms service refused the worker or closed the stream."""

    def __init__(self, message: str, code: Optional[grpc.StatusCode] = None) -> None:
        super().__init__(message)
        self.code = code

    @property
    def refuses_the_worker(self) -> bool:
        """Its key or id was refused: reconnecting would be refused again."""
        return self.code in (
            grpc.StatusCode.UNAUTHENTICATED,
            grpc.StatusCode.PERMISSION_DENIED,
            grpc.StatusCode.INVALID_ARGUMENT,
        )


# How long to wait before reconnecting after a stream was lost (doubling up
# to the longest); after a replica's drain message, no wait.
_RECONNECT_FIRST_WAIT = 0.2
_RECONNECT_LONGEST_WAIT = 5.0
# End reports sent this recently are sent again on a new stream: one still
# in the old stream's buffers when it died would be lost, and the session
# would run on. A repeated report is ignored.
_END_REPORTS_REPLAYED = 60.0
_END_REPORTS_KEPT = 1024


def _channel(url: str, root_certificates: Optional[bytes]) -> grpc.aio.Channel:
    """A channel to one of Lobby's workers' doors; TLS for `https://`."""
    parsed = urlparse(url)
    target = parsed.netloc or parsed.path
    if parsed.scheme == "https":
        credentials = grpc.ssl_channel_credentials(root_certificates=root_certificates)
        return grpc.aio.secure_channel(target, credentials)
    return grpc.aio.insecure_channel(target)


# The size of the chunks `Records.upload_audio` streams.
AUDIO_CHUNK_BYTES = 1024 * 1024


class Records:
    """What a worker writes into the sessions it runs (their records, and
    their artifacts: transcript and audio), through the session service's
    workers' door (`https://host:50056`), with the same `wkr_` key it
    attaches with. Only sessions this worker accepted."""

    def __init__(self, url: str, key: str, *, root_certificates: Optional[bytes] = None) -> None:
        self._channel = _channel(url, root_certificates)
        self._stub = pb_grpc.WorkerRecordsStub(self._channel)
        self._artifacts = pb_grpc.WorkerArtifactsStub(self._channel)
        self._metadata = (("authorization", f"Bearer {key}"),)

    async def upload_transcript(self, session_id: str, transcript: Any) -> int:
        """Stores the session's transcript (`conversation.json`): any JSON;
        Lobby's summaries read `{"messages": [{"role", "content",
        "timestamp_ms"}]}`. Replaces an earlier one whole. Returns its size."""
        try:
            stored = await self._artifacts.UploadTranscript(
                pb.WorkerTranscript(session_id=session_id, transcript_json=json.dumps(transcript)),
                metadata=self._metadata,
            )
        except grpc.aio.AioRpcError as e:
            raise WorkerError(f"{e.code().name}: {e.details()}") from e
        return stored.size_bytes

    async def upload_audio(self, session_id: str, wav: Union[bytes, str, "os.PathLike[str]", BinaryIO]) -> int:
        """Stores the session's audio (`conversation.wav`, a WAV file: bytes,
        a path, or a binary file object), streamed in chunks; published only
        once all of it is in. Returns its size."""
        if isinstance(wav, (bytes, bytearray)):
            source: BinaryIO = io.BytesIO(bytes(wav))
            owned = True
        elif isinstance(wav, (str, os.PathLike)):
            source = open(wav, "rb")
            owned = True
        else:
            source, owned = wav, False

        async def chunks() -> AsyncIterator[pb.WorkerAudioChunk]:
            first = True
            while True:
                data = source.read(AUDIO_CHUNK_BYTES)
                if not data:
                    return
                yield pb.WorkerAudioChunk(session_id=session_id if first else "", data=data)
                first = False

        try:
            stored = await self._artifacts.UploadAudio(chunks(), metadata=self._metadata)
        except grpc.aio.AioRpcError as e:
            raise WorkerError(f"{e.code().name}: {e.details()}") from e
        finally:
            if owned:
                source.close()
        return stored.size_bytes

    async def append_messages(
        self,
        session_id: str,
        messages: list[Any],
        *,
        prompt_tokens: int = 0,
        completion_tokens: int = 0,
    ) -> tuple[int, int, int]:
        """Adds messages (kept as sent) and token usage; returns the
        session's totals: messages, prompt tokens, completion tokens."""
        try:
            totals = await self._stub.AppendMessages(
                pb.WorkerMessages(
                    session_id=session_id,
                    messages_json=json.dumps(messages),
                    prompt_tokens=prompt_tokens,
                    completion_tokens=completion_tokens,
                ),
                metadata=self._metadata,
            )
        except grpc.aio.AioRpcError as e:
            raise WorkerError(f"{e.code().name}: {e.details()}") from e
        return totals.messages, totals.prompt_tokens, totals.completion_tokens

    async def close(self) -> None:
        await self._channel.close()


class Worker:
    def __init__(
        self,
        url: str,
        key: str,
        worker_id: str,
        *,
        region: str = "local",
        capacity: int = 1,
        labels: Optional[dict[str, str]] = None,
        root_certificates: Optional[bytes] = None,
    ) -> None:
        """`url` is the workers' door (`https://host:50055`); `key` is this
        worker's own `wkr_` key, valid only for `worker_id`;
        `root_certificates` is the PEM of its CA when that CA is private."""
        self._url = url
        self._root_certificates = root_certificates
        self._key = key
        self._register = pb.Register(
            worker_id=worker_id, region=region, capacity=capacity, labels=labels or {}
        )
        self._outbound: asyncio.Queue[Optional[pb.WorkerMessage]] = asyncio.Queue()
        self._jobs: asyncio.Queue[Optional[Job]] = asyncio.Queue()
        self._tasks: list[asyncio.Task] = []
        self._channel: Optional[grpc.aio.Channel] = None
        self._closed = False
        self._recent_ends: collections.deque = collections.deque(maxlen=_END_REPORTS_KEPT)
        self.load = 0
        # Times the worker attached again after a stream ended.
        self.reconnects = 0

    def _open_channel(self) -> grpc.aio.Channel:
        return _channel(self._url, self._root_certificates)

    @staticmethod
    async def _requests(queue: "asyncio.Queue[Optional[pb.WorkerMessage]]") -> AsyncIterator[pb.WorkerMessage]:
        while True:
            message = await queue.get()
            if message is None:
                return
            yield message

    async def _open(self):
        """Opens a stream and registers on it: (channel, call, its queue,
        the heartbeat interval in seconds); raises WorkerError if refused."""
        channel = self._open_channel()
        queue: asyncio.Queue[Optional[pb.WorkerMessage]] = asyncio.Queue()
        await queue.put(pb.WorkerMessage(register=self._register))
        call = pb_grpc.WorkersStub(channel).Attach(
            self._requests(queue), metadata=(("authorization", f"Bearer {self._key}"),)
        )
        try:
            first = await call.read()
        except grpc.aio.AioRpcError as e:
            await channel.close()
            raise WorkerError(f"{e.code().name}: {e.details()}", e.code()) from e
        if first is grpc.aio.EOF or not first.HasField("registered"):
            await channel.close()
            raise WorkerError("the rooms service closed the stream before registering")
        return channel, call, queue, max(first.registered.heartbeat_interval_ms, 100) / 1000

    async def attach(self) -> None:
        """Opens the stream and registers; raises WorkerError if refused.
        The worker outlives a stream: when a rooms replica drains or goes
        away, it reconnects with the same worker id, and what is sent
        meanwhile waits for the new stream."""
        channel, call, queue, interval = await self._open()
        self._channel = channel
        self._tasks.append(asyncio.create_task(self._heartbeats(interval)))
        self._tasks.append(asyncio.create_task(self._supervise(call, queue)))

    async def _heartbeats(self, interval: float) -> None:
        while not self._closed:
            await asyncio.sleep(interval)
            await self._outbound.put(pb.WorkerMessage(heartbeat=pb.Heartbeat(load=self.load)))

    async def _forward(self, queue: "asyncio.Queue[Optional[pb.WorkerMessage]]") -> None:
        while True:
            message = await self._outbound.get()
            await queue.put(message)
            if message is None:
                return

    async def _pump(self, call, queue) -> bool:
        """Carries one stream until it ends; True when the replica drains."""
        forward = asyncio.create_task(self._forward(queue))
        # read() throughout: grpc.aio refuses to mix it with async iteration,
        # and _open() already read the first message with it.
        try:
            while True:
                message = await call.read()
                if message is grpc.aio.EOF:
                    return False
                if message.HasField("job"):
                    await self._jobs.put(message.job)
                elif message.HasField("drain"):
                    return True
        except grpc.aio.AioRpcError:
            return False
        finally:
            forward.cancel()
            # Closing our side lets a draining replica close at once.
            await queue.put(None)

    async def _supervise(self, call, queue) -> None:
        try:
            while not self._closed:
                drained = await self._pump(call, queue)
                if self._closed:
                    return
                if self._channel is not None:
                    await self._channel.close()
                wait = 0.0 if drained else _RECONNECT_FIRST_WAIT
                while True:
                    await asyncio.sleep(wait)
                    try:
                        self._channel, call, queue, _ = await self._open()
                        break
                    except WorkerError as e:
                        if e.refuses_the_worker:
                            return
                        wait = min(max(wait * 2, _RECONNECT_FIRST_WAIT), _RECONNECT_LONGEST_WAIT)
                self.reconnects += 1
                now = time.monotonic()
                for sent_at, message in list(self._recent_ends):
                    if now - sent_at <= _END_REPORTS_REPLAYED:
                        await queue.put(message)
        finally:
            # Refused, or closed: nothing more is sent.
            self._closed = True
            await self._jobs.put(None)

    async def jobs(self) -> AsyncIterator[Job]:
        """The jobs offered to this worker, until it is closed or refused."""
        while True:
            job = await self._jobs.get()
            if job is None:
                return
            yield job

    async def accept(self, job_id: str) -> None:
        self.load += 1
        await self._outbound.put(pb.WorkerMessage(accepted=pb.JobAccepted(job_id=job_id)))

    async def reject(self, job_id: str, reason: str) -> None:
        await self._outbound.put(
            pb.WorkerMessage(rejected=pb.JobRejected(job_id=job_id, reason=reason))
        )

    async def session_ended(self, session_id: str, reason: str) -> None:
        """Reports the end of a session this worker ran; Lobby ends it."""
        self.load = max(0, self.load - 1)
        message = pb.WorkerMessage(
            session_ended=pb.SessionEnded(session_id=session_id, reason=reason)
        )
        self._recent_ends.append((time.monotonic(), message))
        await self._outbound.put(message)

    async def close(self) -> None:
        self._closed = True
        await self._outbound.put(None)
        for task in self._tasks:
            task.cancel()
        if self._channel is not None:
            await self._channel.close()
