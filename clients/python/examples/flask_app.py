import os

from flask import Flask, g

from jwt_auth_client import VerifierClient
from jwt_auth_client.flask import JwtAuth, require_admin, require_token

app = Flask(__name__)
JwtAuth(app, VerifierClient(os.environ.get("VERIFIER_URL", "http://127.0.0.1:8002")))

@app.get("/me")
@require_token
def me():
    return {"userId": g.identity.user_id, "isAdmin": g.identity.is_admin}

@app.delete("/users/<user_id>")
@require_admin
def delete_user(user_id):
    return {"deletedBy": g.identity.user_id, "userId": user_id}
