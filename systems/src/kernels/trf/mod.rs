//! TODO(kernel trf): bounded Trust Region Reflective least squares (in progress).
