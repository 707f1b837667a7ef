"""The lab's backend: gets a Microsoft Graph token through workload identity
and counts the tenant's users. /api/graph reports how it went."""

import json
import os
from http.server import BaseHTTPRequestHandler, HTTPServer

import requests
from azure.identity import WorkloadIdentityCredential

GRAPH = "https://graph.microsoft.com/v1.0"


def graph_check():
    # Injected by the workload identity webhook into pods labelled
    # azure.workload.identity/use: "true".
    credential = WorkloadIdentityCredential(
        tenant_id=os.environ["AZURE_TENANT_ID"],
        client_id=os.environ["AZURE_CLIENT_ID"],
        token_file_path=os.environ["AZURE_FEDERATED_TOKEN_FILE"],
    )
    token = credential.get_token("https://graph.microsoft.com/.default")
    response = requests.get(
        f"{GRAPH}/users/$count",
        headers={"Authorization": f"Bearer {token.token}", "ConsistencyLevel": "eventual"},
        timeout=10,
    )
    response.raise_for_status()
    return {
        "tokenAcquired": True,
        "tokenSource": "workload-identity",
        "clientId": os.environ["AZURE_CLIENT_ID"],
        "graphUsers": int(response.text),
    }


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/healthz":
            body, status = {"status": "ok"}, 200
        elif self.path == "/api/graph":
            try:
                body, status = graph_check(), 200
            except Exception as error:  # report, do not crash the pod
                body, status = {"tokenAcquired": False, "error": str(error)}, 502
        else:
            body, status = {"error": "not found"}, 404
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


if __name__ == "__main__":
    HTTPServer(("", 8080), Handler).serve_forever()
