import os

from fastapi import FastAPI, Request

from jwt_auth_client import VerifierClient
from jwt_auth_client.asgi import VerifierMiddleware

verifier = VerifierClient(os.environ.get("VERIFIER_URL", "http://127.0.0.1:8002"))
app = FastAPI()
app.add_middleware(VerifierMiddleware, client=verifier)

@app.get("/me")
def me(request: Request):
    return {"userId": request.state.identity.user_id, "isAdmin": request.state.identity.is_admin}
