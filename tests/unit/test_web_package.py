"""The web pages as package data: served by routers/web.py from the installed package, shipped in
the wheel (a non-editable install), and written to put data into the DOM as text only."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from belle_gateway.errors import install_error_handlers
from belle_gateway.routers import web

ROOT = Path(__file__).resolve().parents[2]
WEB = ROOT / "services" / "gateway" / "belle_gateway" / "web"
PAGES = ["index.html", "chat.html", "jobs.html", "evals.html", "pipelines.html", "lineage.html"]


@pytest.fixture(scope="module")
def client():
    app = FastAPI()
    install_error_handlers(app)
    app.include_router(web.router)
    return TestClient(app)


def test_root_and_ui_redirect_to_the_sign_in_page(client):
    for path in ("/", "/ui"):
        response = client.get(path, follow_redirects=False)
        assert response.status_code == 302 and response.headers["location"] == "/ui/"
    page = client.get("/ui/")
    assert page.status_code == 200 and 'id="login-form"' in page.text


@pytest.mark.parametrize(("name", "media"), [("chat.html", "text/html"), ("api.js", "text/javascript"),
                                             ("style.css", "text/css")])
def test_files_are_served_with_their_type_and_a_strict_policy(client, name, media):
    response = client.get(f"/ui/{name}")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith(media)
    assert response.content == (WEB / name).read_bytes()
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy and "unsafe-eval" not in policy
    assert response.headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize("name", ["nope.html", "..%2Fapp.py", "%2E%2E%2Frouters%2Fweb.py", "web.py", ".hidden.js",
                                  "CHAT.HTML"])
def test_anything_else_is_a_404_in_the_error_shape(client, name):
    response = client.get(f"/ui/{name}")
    assert response.status_code == 404
    assert response.json()["error"]["code"] in ("page_not_found", None)


def test_every_file_a_page_loads_exists():
    for page in PAGES:
        html = (WEB / page).read_text(encoding="utf-8")
        for ref in re.findall(r'(?:src|href)="([^"#:]+\.(?:js|css))"', html):
            assert (WEB / ref).is_file(), (page, ref)
        assert "<script>" not in html and "style=" not in html  # the policy allows no inline code or styles
    for script in WEB.glob("*.js"):
        for imported in re.findall(r'from "\./([^"]+)"', script.read_text(encoding="utf-8")):
            assert (WEB / imported).is_file(), (script.name, imported)


def test_scripts_never_write_html():
    for script in WEB.glob("*.js"):
        text = script.read_text(encoding="utf-8")
        for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
            assert sink not in text, (script.name, sink)


def test_a_non_editable_install_ships_the_pages_and_the_judge_prompts(tmp_path):
    for package, wanted in (("services/gateway", {f"belle_gateway/web/{p.name}" for p in WEB.iterdir()}),
                            ("shared", {"belle_shared/data/judge_prompts.json"})):
        # Built from a copy: setuptools leaves build/ and egg-info folders beside the sources.
        source = tmp_path / "src" / package
        shutil.copytree(ROOT / package, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
        out = tmp_path / "wheels" / package
        subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                        "-w", str(out), str(source)], check=True, capture_output=True, timeout=300)
        (wheel,) = out.glob("*.whl")
        names = set(zipfile.ZipFile(wheel).namelist())
        assert wanted <= names, wanted - names
