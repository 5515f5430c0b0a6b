# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""Tasks of the MONAI Label app serving the MIMS-CNN bundle."""
