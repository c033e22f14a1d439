"""The worker side of Lobby's ``lobby.workers.v1.Workers`` stream, for GPU
services written in Python (LiveKit Agents, Pipecat, ...).

    worker = Worker("http://rooms:50053", token, "gpu-1", region="eu", capacity=4)
    await worker.attach()
    async for job in worker.jobs():
        await worker.accept(job.job_id)
        ...  # join job.room_url with job.agent_token and run the avatar
        await worker.session_ended(job.session_id, "agent finished")
"""

from .client import Job, Records, Worker, WorkerError

__all__ = ["Job", "Records", "Worker", "WorkerError"]
