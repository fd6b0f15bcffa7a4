"""A fake GitHub REST API on loopback that the real PyGithub client talks to.

It keeps just enough state to behave like GitHub where our code depends on it:
pull requests (create / list / get / edit, 422 when an open PR with the same
head and base exists), issues and their comments (create / list / edit),
labels, and collaborator permissions. Every request is recorded so tests can
scan what was sent (for secrets, duplicates, ...).
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict
    body: str


@dataclass
class FakeGitHub:
    token: str = "ghs_faketoken"
    permissions: dict[str, str] = field(default_factory=dict)  # login -> admin|write|read|none
    pulls: dict[tuple[str, int], dict] = field(default_factory=dict)
    issues: dict[tuple[str, int], dict] = field(default_factory=dict)
    comments: dict[int, dict] = field(default_factory=dict)
    requests: list[Recorded] = field(default_factory=list)
    drafts_supported: bool = True
    # GitHub App: JWTs signed by this key may exchange for an installation token (= `token`).
    app_public_key: str | None = None
    # Fault injection: the next N pull listings answer [] (a race: someone opened the PR meanwhile).
    stale_pull_lists: int = 0
    _counter: int = 0
    base: str = ""

    def next_id(self) -> int:
        self._counter += 1
        return self._counter

    # --- helpers the tests use ---
    def open_pulls(self, repo: str) -> list[dict]:
        return [p for (r, _), p in self.pulls.items() if r == repo and p["state"] == "open"]

    def issue_comments(self, repo: str, number: int) -> list[dict]:
        return [c for c in self.comments.values() if c["_repo"] == repo and c["_issue"] == number]

    def add_issue(self, repo: str, title: str, body: str = "", user: str = "alice") -> int:
        number = self.next_id()
        self.issues[(repo, number)] = self._issue_json(repo, number, title, body, user)
        return number

    # --- JSON shapes ---
    def _user(self, login: str) -> dict:
        return {"login": login, "id": abs(hash(login)) % 10**6, "type": "User",
                "url": f"{self.base}/users/{login}"}

    def repo_json(self, repo: str) -> dict:
        owner, name = repo.split("/")
        return {"id": abs(hash(repo)) % 10**6, "name": name, "full_name": repo, "owner": self._user(owner),
                "url": f"{self.base}/repos/{repo}", "html_url": f"https://github.example/{repo}",
                "clone_url": f"https://github.example/{repo}.git", "default_branch": "main", "private": False}

    def _issue_json(self, repo, number, title, body, user) -> dict:
        url = f"{self.base}/repos/{repo}/issues/{number}"
        return {"id": number, "number": number, "title": title, "body": body, "state": "open",
                "user": self._user(user), "labels": [], "url": url, "comments_url": f"{url}/comments",
                "html_url": f"https://github.example/{repo}/issues/{number}",
                "repository_url": f"{self.base}/repos/{repo}"}


def _label_json(name: str) -> dict:
    return {"name": name, "color": "ededed", "url": f"/labels/{name}"}


class _Handler(BaseHTTPRequestHandler):
    gh: FakeGitHub  # set on the subclass
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # quiet: tests read `gh.requests` instead
        pass

    def _send(self, status: int, payload) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> dict:
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n).decode() if n else ""
        self._raw = raw
        return json.loads(raw) if raw else {}

    def _handle(self, method: str) -> None:
        body = self._body() if method in ("POST", "PATCH", "PUT") else {}
        gh = self.gh
        with _LOCK:
            gh.requests.append(Recorded(method, self.path, dict(self.headers), getattr(self, "_raw", "")))
            auth = self.headers.get("Authorization", "")
            url = urlparse(self.path)
            m = re.fullmatch(r"/app/installations/(\d+)/access_tokens", url.path)
            if method == "POST" and m:
                return self._send(*_installation_token(gh, auth))
            if auth not in (f"token {gh.token}", f"Bearer {gh.token}"):
                return self._send(401, {"message": "Bad credentials"})
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            for pattern, fn in _ROUTES:
                m = re.fullmatch(pattern, f"{method} {url.path}")
                if m:
                    status, payload = fn(gh, body, query, **m.groupdict())
                    return self._send(status, payload)
            return self._send(404, {"message": "Not Found"})

    def do_GET(self):
        self._handle("GET")

    def do_POST(self):
        self._handle("POST")

    def do_PATCH(self):
        self._handle("PATCH")


_LOCK = threading.RLock()
_REPO = r"/repos/(?P<repo>[^/]+/[^/]+)"


def _installation_token(gh, auth: str) -> tuple[int, dict]:
    import jwt

    try:
        claims = jwt.decode(auth.removeprefix("Bearer "), gh.app_public_key, algorithms=["RS256"])
    except Exception:  # any bad JWT is GitHub's 401
        return 401, {"message": "A JSON web token could not be decoded"}
    return 201, {"token": gh.token, "expires_at": "2099-01-01T00:00:00Z", "permissions": {},
                 "repository_selection": "all", "app": str(claims.get("iss"))}


def _get_repo(gh, body, q, repo):
    return 200, gh.repo_json(repo)


def _list_pulls(gh, body, q, repo):
    if gh.stale_pull_lists > 0:
        gh.stale_pull_lists -= 1
        return 200, []
    out = [p for (r, _), p in gh.pulls.items() if r == repo]
    if q.get("state", "open") != "all":
        out = [p for p in out if p["state"] == q.get("state", "open")]
    if "head" in q:
        out = [p for p in out if p["head"]["label"] == q["head"]]
    if "base" in q:
        out = [p for p in out if p["base"]["ref"] == q["base"]]
    return 200, out


def _create_pull(gh, body, q, repo):
    head, base = body["head"], body["base"]
    label = head if ":" in head else f"{repo.split('/')[0]}:{head}"
    if any(p["head"]["label"] == label and p["base"]["ref"] == base and p["state"] == "open"
           for (r, _), p in gh.pulls.items() if r == repo):
        return 422, {"message": "Validation Failed", "errors": [
            {"resource": "PullRequest", "code": "custom",
             "message": f"A pull request already exists for {label}."}],
            "documentation_url": "https://docs.github.com/rest/pulls/pulls#create-a-pull-request"}
    if body.get("draft") and not gh.drafts_supported:
        return 422, {"message": "Validation Failed", "errors": [
            {"resource": "PullRequest", "code": "custom",
             "message": "Draft pull requests are not supported in this repository."}]}
    number = gh.next_id()
    issue = gh._issue_json(repo, number, body["title"], body.get("body", ""), "onboarder[bot]")
    url = f"{gh.base}/repos/{repo}/pulls/{number}"
    pr = {**issue, "url": url, "issue_url": issue["url"], "html_url": f"https://github.example/{repo}/pull/{number}",
          "draft": bool(body.get("draft")), "merged": False,
          "head": {"ref": label.split(":", 1)[1], "label": label},
          "base": {"ref": base, "label": f"{repo.split('/')[0]}:{base}"}}
    gh.pulls[(repo, number)] = pr
    gh.issues[(repo, number)] = issue
    return 201, pr


def _get_pull(gh, body, q, repo, number):
    pr = gh.pulls.get((repo, int(number)))
    return (200, pr) if pr else (404, {"message": "Not Found"})


def _edit_pull(gh, body, q, repo, number):
    pr = gh.pulls.get((repo, int(number)))
    if not pr:
        return 404, {"message": "Not Found"}
    for key in ("title", "body", "state"):
        if key in body:
            pr[key] = body[key]
    return 200, pr


def _get_issue(gh, body, q, repo, number):
    issue = gh.issues.get((repo, int(number)))
    return (200, issue) if issue else (404, {"message": "Not Found"})


def _list_comments(gh, body, q, repo, number):
    return 200, [{k: v for k, v in c.items() if not k.startswith("_")} for c in gh.issue_comments(repo, int(number))]


def _create_comment(gh, body, q, repo, number):
    if (repo, int(number)) not in gh.issues:
        return 404, {"message": "Not Found"}
    cid = gh.next_id()
    c = {"id": cid, "body": body["body"], "user": gh._user("onboarder[bot]"),
         "url": f"{gh.base}/repos/{repo}/issues/comments/{cid}",
         "html_url": f"https://github.example/{repo}/issues/{number}#issuecomment-{cid}",
         "_repo": repo, "_issue": int(number)}
    gh.comments[cid] = c
    return 201, {k: v for k, v in c.items() if not k.startswith("_")}


def _edit_comment(gh, body, q, repo, cid):
    c = gh.comments.get(int(cid))
    if not c or c["_repo"] != repo:
        return 404, {"message": "Not Found"}
    c["body"] = body["body"]
    return 200, {k: v for k, v in c.items() if not k.startswith("_")}


def _add_labels(gh, body, q, repo, number):
    issue = gh.issues.get((repo, int(number)))
    if not issue:
        return 404, {"message": "Not Found"}
    names = body if isinstance(body, list) else body.get("labels", [])
    for name in names:
        if name not in [lbl["name"] for lbl in issue["labels"]]:
            issue["labels"].append(_label_json(name))
    pr = gh.pulls.get((repo, int(number)))
    if pr:
        pr["labels"] = issue["labels"]
    return 200, issue["labels"]


def _permission(gh, body, q, repo, user):
    perm = gh.permissions.get(user, "none")
    return 200, {"permission": perm, "role_name": perm, "user": gh._user(user)}


_ROUTES = [
    (rf"GET {_REPO}", _get_repo),
    (rf"GET {_REPO}/pulls", _list_pulls),
    (rf"POST {_REPO}/pulls", _create_pull),
    (rf"GET {_REPO}/pulls/(?P<number>\d+)", _get_pull),
    (rf"PATCH {_REPO}/pulls/(?P<number>\d+)", _edit_pull),
    (rf"GET {_REPO}/issues/(?P<number>\d+)", _get_issue),
    (rf"GET {_REPO}/issues/(?P<number>\d+)/comments", _list_comments),
    (rf"POST {_REPO}/issues/(?P<number>\d+)/comments", _create_comment),
    (rf"PATCH {_REPO}/issues/comments/(?P<cid>\d+)", _edit_comment),
    (rf"POST {_REPO}/issues/(?P<number>\d+)/labels", _add_labels),
    (rf"GET {_REPO}/collaborators/(?P<user>[^/]+)/permission", _permission),
]


class FakeGitHubServer:
    """`with FakeGitHubServer() as srv:` serves `srv.gh` at `srv.url` until the block ends."""

    def __init__(self, gh: FakeGitHub | None = None):
        self.gh = gh or FakeGitHub()
        handler = type("Handler", (_Handler,), {"gh": self.gh})
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.gh.base = self.url
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> "FakeGitHubServer":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
