"""Drop-in private versions of scikit-image functions.

``safelight.skimage.feature.corner_harris``, ``corner_shi_tomasi``, ``corner_peaks``, ``hog`` and
``safelight.skimage.filters.gaussian``, ``sobel`` take scikit-image's arguments plus a
``cluster=`` keyword and return what scikit-image returns, computed on secret shares: the
image goes to the servers only as shares and the result is decoded on this machine.
Without ``cluster`` three servers with replicated sharing are started on loopback for the
call. Arguments outside what the private pipelines implement raise
:class:`safelight.errors.UnsupportedError` rather than silently computing something else.
"""

from . import feature, filters

__all__ = ["feature", "filters"]
