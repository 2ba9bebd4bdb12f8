//! TODO(kernel cosmology): not yet implemented.
