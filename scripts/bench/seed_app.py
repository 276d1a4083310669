"""The seed project's FastAPI app, recreated verbatim for the agent benchmark's baseline.

Run as the seed did: one uvicorn worker, `uvicorn seed_app:app --host 127.0.0.1 --port N`.
"""
import socket

from fastapi import FastAPI

app = FastAPI()


@app.get("/")
def root():
    return {"message": "Instance is responding", "instance_id": socket.gethostname()}


@app.get("/cluster1")
def cluster1():
    return {"message": "Cluster 1 (Large) responding", "instance_id": socket.gethostname()}


@app.get("/cluster2")
def cluster2():
    return {"message": "Cluster 2 (Micro) responding", "instance_id": socket.gethostname()}
