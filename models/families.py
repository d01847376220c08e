"""Imports every trainable family, so that each registers itself with training.registry."""

import models.osmis  # noqa: F401
import models.palette  # noqa: F401
import models.segformer  # noqa: F401
import models.spade  # noqa: F401
import models.stylegan2  # noqa: F401
