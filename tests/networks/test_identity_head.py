# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""IdentityHead: passes features through, TorchScript, channel checks."""

from __future__ import annotations

import pytest
import torch

from networks.blocks import IdentityHead


def test_identity_head(round_trip):
    head = IdentityHead(5)
    x = torch.randn(2, 5, 3, 4)
    (y,) = head(x)
    assert y is x and head.out_channels == 5 and head.output_sizes(3, 4) == [(3, 4)]
    torch.testing.assert_close(round_trip(head)(x)[0], x)
    with pytest.raises(ValueError, match=r"\[M, 5, h, w\]"):
        head(torch.randn(2, 4, 3, 4))
    with pytest.raises(ValueError, match="channels"):
        IdentityHead(0)
