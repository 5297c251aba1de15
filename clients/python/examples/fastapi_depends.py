import os
from typing import Annotated

from fastapi import Depends, FastAPI

from jwt_auth_client import AsyncVerifierClient, Identity
from jwt_auth_client.fastapi import JwtAuth, admin_identity, identity

app = FastAPI()
JwtAuth(app, AsyncVerifierClient(os.environ.get("VERIFIER_URL", "http://127.0.0.1:8002")))

@app.get("/me")
async def me(caller: Annotated[Identity, Depends(identity)]):
    return {"userId": caller.user_id, "isAdmin": caller.is_admin, "session": caller.session}

@app.delete("/users/{user_id}")
async def delete_user(user_id: str, caller: Annotated[Identity, Depends(admin_identity)]):
    return {"deletedBy": caller.user_id, "userId": user_id}
