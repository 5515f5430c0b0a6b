# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""bundle.serving: loopback hosts and the exposure warning, request parameters, SHA-256 checks of model files."""

from __future__ import annotations

import hashlib

import pytest

from bundle.serving import (
    TRAINING_NOT_OFFERED,
    check_sha256,
    exposure_warning,
    is_loopback_host,
    positive_int_param,
    start_server_host,
    verify_sha256,
)

LOOPBACK_CASES = [
    ("127.0.0.1", True),
    ("127.1.2.3", True),
    ("::1", True),
    ("[::1]", True),
    ("localhost", True),
    ("LocalHost", True),
    ("0.0.0.0", False),
    ("::", False),
    ("192.168.1.20", False),
    ("10.0.0.1", False),
    ("example.org", False),
    ("", False),
]


@pytest.mark.parametrize("host, loopback", LOOPBACK_CASES)
def test_is_loopback_host(host, loopback):
    assert is_loopback_host(host) is loopback


@pytest.mark.parametrize("host, loopback", LOOPBACK_CASES)
def test_exposure_warning_only_beyond_loopback(host, loopback):
    warning = exposure_warning(host)
    if loopback:
        assert warning is None
    else:
        assert "Start it with --host 127.0.0.1" in warning
        assert "without authentication" in warning and "CORS *" in warning
        assert f"(--host {host or '0.0.0.0'})" in warning


@pytest.mark.parametrize(
    "host, where",
    [("0.0.0.0", "every network interface of this machine"), ("::", "every network interface of this machine"),
     ("192.168.1.20", "192.168.1.20")],
)
def test_exposure_warning_names_where(host, where):
    assert exposure_warning(host).startswith(f"the server listens on {where} (--host {host})")


@pytest.mark.parametrize(
    "argv, host",
    [
        (["main.py", "start_server", "--app", "a", "--studies", "s"], "0.0.0.0"),  # MONAI Label's default
        (["main.py", "start_server", "--app", "a", "--host", "127.0.0.1", "--port", "8000"], "127.0.0.1"),
        (["main.py", "start_server", "-i", "10.1.2.3"], "10.1.2.3"),
        (["main.py", "start_server", "--conf", "bundle_path", "/b", "--host=::1"], "::1"),
        (["main.py", "start_server", "--conf", "configs", "x.json", "--ho", "1.2.3.4"], "1.2.3.4"),  # abbreviated
        (["main.py", "apps"], None),
        (["-m", "infer", "-r", "{}"], None),  # MONAI Label's task runner, no server
        ([], None),
    ],
)
def test_start_server_host(argv, host):
    assert start_server_host(argv) == host


@pytest.mark.parametrize(
    "request_, expected",
    [({}, 3), ({"num_key_slices": None}, 3), ({"num_key_slices": 1}, 1), ({"num_key_slices": 5}, 5),
     ({"num_key_slices": "7"}, 7), ({"num_key_slices": " 2 "}, 2), ({"other": "x"}, 3)],
)
def test_positive_int_param_accepts(request_, expected):
    assert positive_int_param(request_, "num_key_slices", 3) == expected


@pytest.mark.parametrize("value", ["abc", "2.5", 2.5, 2.0, 0, -1, "0", "-3", "", True, False, [2], {"n": 2}])
def test_positive_int_param_refuses(value):
    with pytest.raises(ValueError) as error:
        positive_int_param({"num_key_slices": value}, "num_key_slices", 3)
    assert str(error.value) == f"request parameter num_key_slices must be an integer >= 1, got {value!r}"


def test_positive_int_param_names_the_source():
    with pytest.raises(ValueError, match=r"^--conf num_key_slices must be an integer >= 1, got 'x'$"):
        positive_int_param({"num_key_slices": "x"}, "num_key_slices", 3, source="--conf")


def test_training_message_says_how_to_train():
    assert TRAINING_NOT_OFFERED.startswith("training is not offered through MONAI Label for this bundle")
    assert "configs/train.json" in TRAINING_NOT_OFFERED and "models/model.pt" in TRAINING_NOT_OFFERED


DIGEST = hashlib.sha256(b"model bytes").hexdigest()


@pytest.mark.parametrize(
    "value, expected",
    [(DIGEST, DIGEST), (DIGEST.upper(), DIGEST), (f"sha256:{DIGEST}", DIGEST), (f" {DIGEST}\n", DIGEST)],
)
def test_check_sha256_accepts(value, expected):
    assert check_sha256(value) == expected


@pytest.mark.parametrize("value", ["", "abc", DIGEST[:-1], DIGEST + "0", "g" * 64, f"md5:{DIGEST}"])
def test_check_sha256_refuses(value):
    with pytest.raises(ValueError) as error:
        check_sha256(value)
    assert str(error.value) == f"expected a SHA-256 hex digest (64 hex digits), got {value!r}"


def test_verify_sha256_accepts_the_file_digest(tmp_path):
    path = tmp_path / "model.ts"
    path.write_bytes(b"model bytes")
    assert verify_sha256(path, DIGEST) == DIGEST
    assert verify_sha256(str(path), DIGEST.upper()) == DIGEST


def test_verify_sha256_mismatch_names_the_file_and_both_digests(tmp_path):
    path = tmp_path / "model.ts"
    path.write_bytes(b"other bytes")
    actual = hashlib.sha256(b"other bytes").hexdigest()
    with pytest.raises(ValueError) as error:
        verify_sha256(path, DIGEST)
    message = str(error.value)
    assert message.startswith(f"{path}: SHA-256 mismatch: the file has {actual}, expected {DIGEST}; not loading it")


def test_verify_sha256_missing_file_and_bad_digest(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file, cannot check its SHA-256"):
        verify_sha256(tmp_path / "absent.ts", DIGEST)
    (tmp_path / "model.ts").write_bytes(b"model bytes")
    with pytest.raises(ValueError, match="expected a SHA-256 hex digest"):
        verify_sha256(tmp_path / "model.ts", "not-a-digest")
