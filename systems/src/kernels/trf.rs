//! TODO(kernel trf): not yet implemented.
