//! TODO(kernel nnls): not yet implemented.
