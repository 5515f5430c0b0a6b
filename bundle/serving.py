# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""Serving safely: the checks the MONAI Label and MONAI Deploy apps make before they serve or load anything.

- :func:`exposure_warning`: the warning for a server that listens beyond this machine (``monailabel
  start_server`` listens on ``0.0.0.0`` unless ``--host`` says otherwise, with no authentication and CORS
  ``*``); :func:`start_server_host` reads the host from the ``start_server`` command line.
- :func:`positive_int_param`: a request parameter that must be an integer >= 1 (``num_key_slices``), with a
  message naming the parameter and the value, which the Label app answers as HTTP 422.
- :data:`TRAINING_NOT_OFFERED`: what the Label app answers to ``POST /train/``.
- :func:`check_sha256` and :func:`verify_sha256`: a model archive checked against the SHA-256 the user
  trusts before it is loaded (``model.ts`` is code: its embedded config is evaluated when it is read).

No import beyond the standard library at module level: the Label app imports this module before the network.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "LOOPBACK_NAMES",
    "TRAINING_NOT_OFFERED",
    "check_sha256",
    "exposure_warning",
    "is_loopback_host",
    "positive_int_param",
    "start_server_host",
    "verify_sha256",
]

#: host names that always mean this machine only
LOOPBACK_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback")
#: MONAI Label's ``start_server --host`` default (0.8.5): every interface
MONAI_LABEL_DEFAULT_HOST = "0.0.0.0"
#: the answer of the Label app to ``POST /train/`` and ``POST /train/<model>``
TRAINING_NOT_OFFERED = (
    "training is not offered through MONAI Label for this bundle: it learns from one class label per volume, "
    "which MONAI Label 0.8.5's bundle trainer cannot read (it expects label files). Train with the bundle's own "
    "command (python -m monai.bundle run --config_file \"['configs/common.json','configs/train.json']\"), then "
    "restart the server on the new models/model.pt (docs/monai_label.md)."
)
_SHA256 = re.compile(r"[0-9a-f]{64}")


def is_loopback_host(host: str) -> bool:
    """True when ``host`` reaches this machine only: a loopback address (``127.0.0.0/8``, ``::1``) or ``localhost``.

    Names other than :data:`LOOPBACK_NAMES` are not resolved (no network access) and count as not loopback.
    """
    name = host.strip().strip("[]").lower()
    if name in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def exposure_warning(host: str) -> str | None:
    """The warning for a server listening on ``host``; None for a loopback host (:func:`is_loopback_host`).

    The text names the host, what is open (upload, inference, the datastore; no authentication; any web page
    may call it, CORS ``*``) and the remedy (``--host 127.0.0.1``, or authentication and a firewall).
    """
    if is_loopback_host(host):
        return None
    name = host.strip().strip("[]")
    where = "every network interface of this machine" if name in ("0.0.0.0", "::", "") else f"{host}"
    return (
        f"the server listens on {where} (--host {host or MONAI_LABEL_DEFAULT_HOST}): anyone who can reach it can "
        "upload volumes, read the datastore and run the model, without authentication (MONAI Label's default), and "
        "any web page may call it (CORS *). Start it with --host 127.0.0.1 unless other machines must reach it; "
        "then put it behind authentication and a firewall (docs/monai_label.md#security)."
    )


def start_server_host(argv: Sequence[str]) -> str | None:
    """The host of a ``monailabel start_server`` command line; None when ``argv`` is not one.

    Args:
        argv: the process's arguments (``sys.argv``), e.g. ``[".../monailabel/main.py", "start_server", "--app",
            "app", "--host", "0.0.0.0"]``.

    Returns:
        the ``-i/--host`` value, MONAI Label's default ``0.0.0.0`` when the option is absent.
    """
    args = list(argv)
    if "start_server" not in args:
        return None
    parser = argparse.ArgumentParser(add_help=False)  # abbreviations, as MONAI Label's parser allows
    parser.add_argument("-i", "--host", default=MONAI_LABEL_DEFAULT_HOST)
    known, _ = parser.parse_known_args(args[args.index("start_server") + 1 :])
    return str(known.host)


def positive_int_param(
    request: Mapping[str, Any], name: str, default: int, source: str = "request parameter"
) -> int:
    """The parameter ``name`` of ``request`` as an integer >= 1; ``default`` when ``request`` does not set it.

    Accepts an ``int`` or a string of decimal digits (form fields arrive as text); rejects booleans, floats
    (``2.5`` and ``2.0``: a count is written without decimals), other text and values < 1.

    Args:
        request: the parameters, e.g. an infer request of MONAI Label.
        name: the parameter, e.g. ``"num_key_slices"``.
        default: the value when ``request`` lacks ``name`` (or holds None).
        source: what ``request`` is, named in the error (``"request parameter"``, ``"--conf"``).

    Raises:
        ValueError: naming the parameter, the value given and what is allowed.
    """
    if name not in request or request[name] is None:
        return int(default)
    value = request[name]
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and value.strip().lstrip("+-").isdigit():
        number = int(value.strip())
    if number is None or number < 1:
        raise ValueError(f"{source} {name} must be an integer >= 1, got {value!r}")
    return number


def check_sha256(value: str) -> str:
    """``value`` as a lower-case SHA-256 hex digest (64 hex digits; ``sha256:`` prefix and case ignored).

    Raises:
        ValueError: naming the value when it is not a SHA-256 hex digest.
    """
    digest = str(value).strip().lower().removeprefix("sha256:")
    if not _SHA256.fullmatch(digest):
        raise ValueError(f"expected a SHA-256 hex digest (64 hex digits), got {value!r}")
    return digest


def verify_sha256(path: str | os.PathLike, expected: str) -> str:
    """Check the file ``path`` against the SHA-256 digest ``expected`` before anything loads it.

    Args:
        path: the file, e.g. ``models/model.ts``.
        expected: the digest the user trusts (:func:`check_sha256` formats), e.g. from the model-zoo package's
            ``large_files.yml`` or ``sha256sum models/model.ts`` where the archive was made.

    Returns:
        the file's digest (equal to ``expected``).

    Raises:
        ValueError: ``expected`` is not a digest, or the file's digest differs; the message names the file and
            both digests.
        FileNotFoundError: ``path`` is not a file.
    """
    from bundle.checksums import sha256

    wanted = check_sha256(expected)
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file, cannot check its SHA-256")
    actual = sha256(path)
    if actual != wanted:
        raise ValueError(
            f"{path}: SHA-256 mismatch: the file has {actual}, expected {wanted}; not loading it (a model archive "
            "is code: use it only from a source you trust)"
        )
    return actual
