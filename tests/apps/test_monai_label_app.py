# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""End-to-end test of the MONAI Label app (``scripts/monai_label_app``) against a real server.

Run from the main environment, with the app's own environment made first (docs/monai_label.md)::

    bash scripts/setup_label_env.sh && .venv/bin/python -m pytest -m slow tests/apps/test_monai_label_app.py

A tiny bundle (the repository's configs with small sizes, its code, and a checkpoint of a randomly
initialised network) and a copy of the app go to a temporary folder (``start_server`` creates
``logs/``, ``model/`` and ``bin/`` inside the app folder, so the repository's copy is left alone);
``.venv-label/bin/monailabel start_server`` serves them on 127.0.0.1 at a free port. Like an annotator's
client, the test uploads a volume to the datastore and asks ``/infer/mims_cnn`` for it over HTTP, then
compares the answer with the same checkpoint's prediction and key slices computed here.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from bundle_testing import TINY  # 32 x 32 slices, ResNet-10 to stage 2, 6 central slices

__all__: list[str] = []

REPO = Path(__file__).resolve().parents[2]
APP = REPO / "scripts" / "monai_label_app"
LABEL_VENV = REPO / ".venv-label"
MONAILABEL = LABEL_VENV / "bin" / "monailabel"
MODEL = "mims_cnn"
#: the test volume: 10 slices along the slice axis (2), of which the central 6 (2..7) are evaluated
VOLUME_SHAPE = (32, 32, 10)
STARTUP_TIMEOUT_S = 300.0
REQUEST_TIMEOUT_S = 300.0
STOP_TIMEOUT_S = 30.0

pytestmark = pytest.mark.slow


def _config_files(bundle: Path) -> list[str]:
    return [str(bundle / "configs" / "common.json"), str(bundle / "configs" / "inference.json")]


def _make_bundle(root: Path) -> Path:
    """The repository's bundle with :data:`TINY` sizes and a checkpoint with non-trivial BatchNorm statistics."""
    from monai.bundle import ConfigParser

    bundle = root / "bundle"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("configs", "networks", "transforms", "bundle"):
        shutil.copytree(REPO / name, bundle / name, ignore=ignore)
    common = bundle / "configs" / "common.json"
    config = json.loads(common.read_text())
    config.update(TINY)
    common.write_text(json.dumps(config, indent=4))

    parser = ConfigParser()
    parser.read_config(_config_files(bundle))
    parser["bundle_root"] = str(bundle)
    torch.manual_seed(0)
    network = parser.get_parsed_content("network_def")
    with torch.no_grad():  # a few training-mode passes move the running statistics away from (0, 1)
        for _ in range(3):
            network(torch.rand(2, 6, 1, 32, 32) * 2.0)
    (bundle / "models").mkdir()
    torch.save(network.state_dict(), bundle / "models" / "model.pt")
    return bundle


def _make_volume(path: Path) -> Path:
    import nibabel as nib

    rng = np.random.default_rng(0)
    volume = rng.random(VOLUME_SHAPE, dtype=np.float32) * 100.0
    volume[10:20, 12:22, 4] += 150.0  # a bright blob on slice 4
    nib.save(nib.Nifti1Image(volume, np.diag([1.0, 1.0, 2.0, 1.0])), str(path))
    return path


def _expected(bundle: Path, volume: Path) -> dict:
    """Probabilities and key slices of ``volume`` computed in this environment, as the app should."""
    from monai.bundle import ConfigParser

    from bundle.localization import key_slices, slice_scores

    parser = ConfigParser()
    parser.read_config(_config_files(bundle))
    parser["bundle_root"] = str(bundle)
    network = parser.get_parsed_content("network_def")
    network.load_state_dict(torch.load(bundle / "models" / "model.pt", map_location="cpu"))
    network.eval()
    item = parser.get_parsed_content("preprocessing")({"image": str(volume)})
    bag = torch.as_tensor(item["image"]).as_subclass(torch.Tensor)[None]
    with torch.no_grad():
        logits = parser.get_parsed_content("inferer")(bag, network)
    probabilities = torch.softmax(logits.float(), dim=1)[0]
    scores, _ = slice_scores(network, bag, class_index=int(probabilities.argmax()))
    top = int(parser.get_parsed_content("num_key_slices"))
    keys = key_slices(scores, torch.as_tensor(item["slice_indices"]).reshape(1, -1), top=top)[0]
    return {
        "probabilities": probabilities.tolist(),
        "key_slices": [(k["slice"], k["score"]) for k in keys],
        "slice_indices": [int(i) for i in item["slice_indices"]],
        "class_names": parser.get_parsed_content("class_names"),
    }


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _log_tail(log: Path, lines: int = 60) -> str:
    text = log.read_text(errors="replace") if log.exists() else "(no log)"
    return "\n".join(text.splitlines()[-lines:])


class Server:
    """A ``monailabel start_server`` subprocess on 127.0.0.1; :meth:`stop` ends it (and only it)."""

    def __init__(self, app: Path, studies: Path, bundle: Path, log: Path) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
        # bin/monailabel is a bash script running `python -m monailabel.main`: name the environment's python
        env.update({"MONAILABEL_PYEXE": str(LABEL_VENV / "bin" / "python"), "VIRTUAL_ENV": str(LABEL_VENV)})
        env["PATH"] = os.pathsep.join([str(LABEL_VENV / "bin"), env.get("PATH", "")])
        env.update({"MONAI_LABEL_SESSIONS": "false", "PYTHONUNBUFFERED": "1"})
        command = [str(MONAILABEL), "start_server", "--app", str(app), "--studies", str(studies)]
        command += ["--conf", "bundle_path", str(bundle), "--host", "127.0.0.1", "--port", str(self.port)]
        self._log_file = open(log, "wb")
        # a session of its own: stop() signals this server's process group, nothing else
        self.process = subprocess.Popen(
            command,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=str(studies.parent),
            start_new_session=True,
        )

    def wait_until_up(self, requests, timeout: float = STARTUP_TIMEOUT_S) -> float:
        """Seconds until ``GET /info/`` answers 200; fails with the server log on exit or timeout."""
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            if self.process.poll() is not None:
                pytest.fail(f"monailabel exited with {self.process.returncode} while starting:\n{_log_tail(self.log)}")
            try:
                if requests.get(f"{self.url}/info/", timeout=5).status_code == 200:
                    return time.monotonic() - start
            except requests.ConnectionError:
                pass
            time.sleep(1.0)
        pytest.fail(f"monailabel did not answer on {self.url} within {timeout:.0f} s:\n{_log_tail(self.log)}")

    def stop(self) -> int | None:
        """Stop the server (a no-op once stopped); its exit code."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)  # uvicorn shuts down gracefully on SIGTERM
            try:
                self.process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=STOP_TIMEOUT_S)
        if not self._log_file.closed:
            self._log_file.close()
        return self.process.returncode


def _needs_label_env() -> None:
    if not MONAILABEL.exists():
        pytest.skip(f"{MONAILABEL.relative_to(REPO)} not found: run `bash scripts/setup_label_env.sh` to make it")


def _start(root: Path, bundle: Path) -> Server:
    """A server for ``bundle`` with a copy of the app and an empty studies folder under ``root``."""
    app = root / "app"
    shutil.copytree(APP, app, ignore=shutil.ignore_patterns("__pycache__", "logs", "model", "bin"))
    studies = root / "studies"
    studies.mkdir()
    return Server(app, studies, bundle, root / "server.log")


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """``(server, bundle, volume)``: a running server with the tiny bundle and an empty studies folder."""
    _needs_label_env()
    root = tmp_path_factory.mktemp("monai_label")
    bundle = _make_bundle(root)
    volume = _make_volume(root / "case_0001.nii.gz")
    server = _start(root, bundle)
    try:
        yield server, bundle, volume
    finally:
        code = server.stop()
        print(f"monailabel server stopped (exit code {code}); log: {server.log}")


# a request's num_key_slices: (value sent in the JSON params, HTTP status, key slices in the answer or the message)
KEY_SLICE_REQUESTS = [
    (2, 200, 2),
    ("1", 200, 1),
    ("abc", 422, "request parameter num_key_slices must be an integer >= 1, got 'abc'"),
    (2.5, 422, "request parameter num_key_slices must be an integer >= 1, got 2.5"),
    (0, 422, "request parameter num_key_slices must be an integer >= 1, got 0"),
    (True, 422, "request parameter num_key_slices must be an integer >= 1, got True"),
]


@pytest.mark.parametrize("value, status, expected", KEY_SLICE_REQUESTS)
def test_request_parameters_are_checked(served, value, status, expected):
    """A bad ``num_key_slices`` is a 422 with a message naming it (MONAI Label alone answers 500)."""
    requests = pytest.importorskip("requests")
    server, _, volume = served
    server.wait_until_up(requests)
    with open(volume, "rb") as f:
        response = requests.post(
            f"{server.url}/infer/{MODEL}",
            files={"file": (volume.name, f, "application/octet-stream")},
            data={"params": json.dumps({"num_key_slices": value})},
            timeout=REQUEST_TIMEOUT_S,
        )
    assert response.status_code == status, f"{response.status_code} {response.text}\n{_log_tail(server.log)}"
    if status == 200:
        assert len(response.json()["key_slices"]) == expected
    else:
        assert response.json() == {"detail": expected}


@pytest.mark.parametrize("path", ["/train/", f"/train/{MODEL}"])
def test_training_is_refused_plainly(served, path):
    """``POST /train/`` (MONAI Label alone: 200 ``{}``) and ``/train/<model>`` answer 404 with the reason."""
    from bundle.serving import TRAINING_NOT_OFFERED

    requests = pytest.importorskip("requests")
    server, _, _ = served
    server.wait_until_up(requests)
    response = requests.post(f"{server.url}{path}", timeout=30)
    assert response.status_code == 404, response.text
    assert response.json() == {"detail": TRAINING_NOT_OFFERED}


def test_upload_and_infer_over_http(served):
    requests = pytest.importorskip("requests")
    server, bundle, volume = served
    startup = server.wait_until_up(requests)
    assert "the server listens on" not in server.log.read_text(errors="replace")  # 127.0.0.1: no exposure warning

    info = requests.get(f"{server.url}/info/", timeout=30).json()
    assert MODEL in info["models"], f"models served: {list(info['models'])}"
    model_info = info["models"][MODEL]
    assert model_info["type"] == "classification"
    assert model_info["bundle"] == str(bundle.resolve())
    assert info["trainers"] == {}

    # an annotator's client: upload the volume into the datastore, then ask for inference on it by id
    with open(volume, "rb") as f:
        response = requests.put(
            f"{server.url}/datastore/image",
            params={"image": "case_0001"},
            files={"file": (volume.name, f, "application/octet-stream")},
            timeout=REQUEST_TIMEOUT_S,
        )
    assert response.status_code == 200, response.text
    image_id = response.json()["image"]
    assert image_id == "case_0001"
    datastore = requests.get(f"{server.url}/datastore/", params={"output": "all"}, timeout=30).json()
    assert image_id in datastore["objects"], f"datastore objects: {list(datastore['objects'])}"

    start = time.monotonic()
    response = requests.post(f"{server.url}/infer/{MODEL}", params={"image": image_id}, timeout=REQUEST_TIMEOUT_S)
    infer_s = time.monotonic() - start
    assert response.status_code == 200, f"{response.status_code} {response.text}\n{_log_tail(server.log)}"
    assert response.headers["content-type"].startswith("application/json"), response.headers["content-type"]
    result = response.json()

    expected = _expected(bundle, volume)
    names = expected["class_names"]
    probabilities = result["probabilities"]
    assert list(probabilities) == names
    values = np.array([probabilities[n] for n in names])
    assert values.sum() == pytest.approx(1.0, abs=1e-5)
    np.testing.assert_allclose(values, expected["probabilities"], atol=1e-4)
    assert result["class_index"] == int(values.argmax())
    assert result["class_name"] == names[result["class_index"]]
    assert result["class_index"] == int(np.argmax(expected["probabilities"]))
    # MONAI Label's own classification list is kept
    assert [(p["idx"], p["label"]) for p in result["prediction"]] == list(enumerate(names))

    # key slices: original slice numbers of the evaluated central window (2..7 of 10), best first
    assert result["slice_axis"] == 2
    assert result["slice_indices"] == expected["slice_indices"] == list(range(2, 8))
    keys = result["key_slices"]
    assert len(keys) == len(expected["key_slices"]) == 3
    for key in keys:
        assert 0 <= key["slice"] < VOLUME_SHAPE[2] and key["slice"] in result["slice_indices"]
    assert [k["slice"] for k in keys] == [s for s, _ in expected["key_slices"]]
    np.testing.assert_allclose([k["score"] for k in keys], [s for _, s in expected["key_slices"]], rtol=1e-3, atol=1e-5)
    scores = [k["score"] for k in keys]
    assert scores == sorted(scores, reverse=True)

    # a clean stop: uvicorn shuts the app down, then re-raises the SIGTERM it handled
    code = server.stop()
    assert code in (0, -signal.SIGTERM), f"exit code {code}\n{_log_tail(server.log)}"
    assert "Finished server process" in server.log.read_text(errors="replace"), _log_tail(server.log)

    print(f"server up in {startup:.1f} s; infer over HTTP {infer_s:.2f} s; result: {json.dumps(result)}")


#: (``--host`` of the start command, None: not given, i.e. MONAI Label's 0.0.0.0; whether the app warns)
HOSTS = [(None, True), ("0.0.0.0", True), ("192.0.2.10", True), ("127.0.0.1", False), ("localhost", False)]

_BUILD_APPS = """
import json, logging, sys
app, studies, bundle, hosts = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
sys.path.insert(0, app)
warnings = []
class Keep(logging.Handler):
    def emit(self, record):
        if record.levelno == logging.WARNING:
            warnings.append(record.getMessage())
logging.getLogger().addHandler(Keep())
from main import MIMSCNNApp
found = []
for host in hosts:
    sys.argv = ["monailabel/main.py", "start_server", "--app", app, "--studies", studies]
    sys.argv += [] if host is None else ["--host", host]
    warnings.clear()
    MIMSCNNApp(app_dir=app, studies=studies, conf={"bundle_path": bundle})
    found.append([w for w in warnings if w.startswith("the server listens on")])
print("FOUND " + json.dumps(found))
"""


def test_the_app_warns_when_the_host_is_not_loopback(tmp_path):
    """The app reads ``--host`` of ``start_server`` when it starts and warns unless it is a loopback host.

    The app is built in ``.venv-label`` as ``start_server`` builds it, with each command line, but no server
    is started (a test should not listen on every interface).
    """
    _needs_label_env()
    from bundle.serving import exposure_warning

    bundle = _make_bundle(tmp_path)
    app = tmp_path / "app"
    shutil.copytree(APP, app, ignore=shutil.ignore_patterns("__pycache__", "logs", "model", "bin"))
    studies = tmp_path / "studies"
    studies.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["MONAI_LABEL_SESSIONS"] = "false"
    hosts = [host for host, _ in HOSTS]
    command = [str(LABEL_VENV / "bin" / "python"), "-c", _BUILD_APPS, str(app), str(studies), str(bundle)]
    proc = subprocess.run(
        [*command, json.dumps(hosts)], cwd=tmp_path, env=env, capture_output=True, encoding="utf-8", timeout=600
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("FOUND ")]
    assert proc.returncode == 0 and lines, f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    found = json.loads(lines[-1].removeprefix("FOUND "))
    for (host, warns), warnings in zip(HOSTS, found):
        assert warnings == ([exposure_warning(host or "0.0.0.0")] if warns else []), host


def test_a_checkpoint_that_does_not_fit_stops_the_start(tmp_path):
    """Weights are loaded strictly when the app starts (MONAI Label's bundle task alone loads them non-strictly
    on the first request): a checkpoint of another network ends the server with a message naming the bundle."""
    _needs_label_env()
    bundle = _make_bundle(tmp_path)
    checkpoint = bundle / "models" / "model.pt"
    state = torch.load(checkpoint, map_location="cpu")
    state["renamed." + next(iter(state))] = state.pop(next(iter(state)))
    torch.save(state, checkpoint)
    server = _start(tmp_path, bundle)
    try:
        server.process.wait(timeout=STARTUP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the server started with a checkpoint that does not fit:\n{_log_tail(server.log)}")
    finally:
        server.stop()
    log = server.log.read_text(errors="replace")
    assert server.process.returncode != 0
    assert f"bundle {bundle.resolve()}: models/model.pt does not fit network_def" in log, _log_tail(server.log)
