# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""MONAI Label app serving the MIMS-CNN classification bundle (docs/monai_label.md).

Start it from the repository root with the environment of ``scripts/setup_label_env.sh``::

    .venv-label/bin/monailabel start_server --app scripts/monai_label_app --studies <folder of volumes> \\
        --conf bundle_path <bundle folder> --host 127.0.0.1 --port 8000

Settings (``--conf KEY VALUE``):

- ``bundle_path``: the bundle folder (``configs/``, ``networks/``, ``transforms/``, ``bundle/``,
  ``models/model.pt``): this repository or an unpacked package of the bundle. Default: the repository
  that holds this app (two folders up).
- ``configs``: the inference configs under ``<bundle>/configs``, comma-separated, merged in order.
  Default ``common.json,inference.json``; add the method overlay a checkpoint was trained with, e.g.
  ``common.json,inference.json,methods/mims_max.json``.
- ``num_key_slices``: key slices per volume (default: the config's ``num_key_slices``).
- ``preload``: ``true`` loads the network when the server starts (MONAI Label's own setting).

One infer task, :data:`MODEL_NAME`: ``POST /infer/mims_cnn?image=<id>`` answers with the class, the
probabilities per class name and the key slices of the volume (:class:`lib.infers.MIMSCNNInfer`); a request
parameter that is not valid (e.g. ``num_key_slices`` not an integer >= 1) is answered with HTTP 422 and a
message. No trainer and no scoring method are offered (see docs/monai_label.md): ``POST /train/`` and
``POST /train/<model>`` answer HTTP 404 with :data:`bundle.serving.TRAINING_NOT_OFFERED`. The active-learning
strategies ``random`` and ``first`` pick the next volume to annotate.

Serving safely: the app warns at start when ``--host`` is not a loopback address (MONAI Label's default is
``0.0.0.0``, without authentication, CORS ``*``; :func:`bundle.serving.exposure_warning`). The bundle's configs
and checkpoint are code: serve only bundles from a source you trust (docs/monai_label.md#security).
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

from lib.infers import MIMSCNNInfer, bundle_on_path, parse_config_files
from monailabel.config import settings
from monailabel.interfaces.app import MONAILabelApp
from monailabel.interfaces.exception import MONAILabelError, MONAILabelException
from monailabel.interfaces.tasks.infer_v2 import InferTask
from monailabel.interfaces.tasks.strategy import Strategy
from monailabel.interfaces.tasks.train import TrainTask
from monailabel.tasks.activelearning.first import First
from monailabel.tasks.activelearning.random import Random

__all__ = ["MODEL_NAME", "MIMSCNNApp", "default_bundle_path"]

logger = logging.getLogger(__name__)

#: name of the infer task (``/infer/<name>``)
MODEL_NAME = "mims_cnn"


def default_bundle_path(app_dir: str | os.PathLike) -> Path:
    """The repository holding the app: ``<repo>/scripts/monai_label_app`` -> ``<repo>``."""
    return Path(app_dir).resolve().parents[1]


class MIMSCNNApp(MONAILabelApp):
    """MONAI Label app with one classification infer task for the bundle at ``--conf bundle_path``.

    Args:
        app_dir: this folder (MONAI Label passes it).
        studies: the studies folder (a local datastore of NIfTI volumes) or a remote datastore URL.
        conf: ``--conf`` settings, see the module docstring.

    Raises:
        FileNotFoundError: the bundle folder, one of its configs or its checkpoint is missing.
    """

    def __init__(self, app_dir: str, studies: str, conf: dict[str, str]) -> None:
        conf = conf or {}
        bundle = conf.get("bundle_path") or str(default_bundle_path(app_dir))
        self.bundle_path = str(Path(bundle).expanduser().resolve())
        if not os.path.isdir(self.bundle_path):
            raise FileNotFoundError(f"bundle_path {self.bundle_path} is not a folder (--conf bundle_path <bundle>)")
        self.config_files = parse_config_files(conf.get("configs"))
        with bundle_on_path(self.bundle_path):  # the served bundle's own code (docs/monai_label.md)
            from bundle import serving
        self._serving = serving
        host = serving.start_server_host(sys.argv)
        warning = None if host is None else serving.exposure_warning(host)
        if warning:
            logger.warning(warning)
        key_slices = conf.get("num_key_slices")
        self.num_key_slices = (
            serving.positive_int_param(conf, "num_key_slices", 1, source="--conf") if key_slices else None
        )
        metadata = self._metadata()
        super().__init__(
            app_dir=app_dir,
            studies=studies,
            conf=conf,
            name=f"MONAI Label - {metadata.get('name', 'MIMS-CNN bundle')}",
            description=metadata.get("description", "MIMS-CNN volume classification"),
            version=str(metadata.get("version", "")),
        )

    def _metadata(self) -> dict:
        path = Path(self.bundle_path) / "configs" / "metadata.json"
        if not path.is_file():
            raise FileNotFoundError(f"bundle {self.bundle_path}: no configs/metadata.json")
        with open(path) as f:
            return json.load(f)

    def init_infers(self) -> dict[str, InferTask]:
        task = MIMSCNNInfer(self.bundle_path, self.conf, self.config_files, self.num_key_slices)
        logger.info(f"+++ Adding Inferer:: {MODEL_NAME} => {self.bundle_path} ({', '.join(self.config_files)})")
        self.labels = task.labels
        return {MODEL_NAME: task}

    def init_trainers(self) -> dict[str, TrainTask]:
        """None: MONAI Label 0.8.5's bundle trainer cannot train this bundle (docs/monai_label.md)."""
        return {}

    def train(self, request: dict[str, Any]) -> dict[str, Any]:
        """Refuse: training is not offered through MONAI Label for this bundle (the message says how to train).

        Raises:
            MONAILabelException: ``INVALID_INPUT`` with :data:`bundle.serving.TRAINING_NOT_OFFERED`.
        """
        raise MONAILabelException(MONAILabelError.INVALID_INPUT, self._serving.TRAINING_NOT_OFFERED)

    def on_init_complete(self) -> None:
        """MONAI Label's start-up work, then (server mode) ``POST /train/`` and ``/train/<model>`` answer 404.

        MONAI Label's own ``POST /train/`` loops over the trainers and answers 200 ``{}`` when there are none,
        and ``POST /train/<model>`` queues a task that fails in the background; both are answered here instead,
        with HTTP 404 and :data:`bundle.serving.TRAINING_NOT_OFFERED`, by routes put before MONAI Label's own.
        """
        super().on_init_complete()
        if self._server_mode:
            self._refuse_training_routes()

    def _refuse_training_routes(self) -> None:
        server = getattr(sys.modules.get("monailabel.app"), "app", None)  # the FastAPI app uvicorn serves
        if server is None:
            logger.warning("monailabel.app is not loaded: POST /train/ keeps MONAI Label's answer (200 {})")
            return
        from fastapi import HTTPException
        from fastapi.routing import APIRoute

        message = self._serving.TRAINING_NOT_OFFERED

        def refuse(model: str = "") -> None:
            raise HTTPException(status_code=404, detail=message)

        prefix = settings.MONAI_LABEL_API_STR
        routes = [
            APIRoute(f"{prefix}/train/", refuse, methods=["POST"], include_in_schema=False),
            APIRoute(f"{prefix}/train/{{model}}", refuse, methods=["POST"], include_in_schema=False),
        ]
        server.router.routes[0:0] = routes

    def init_strategies(self) -> dict[str, Strategy]:
        return {"random": Random(), "first": First()}
