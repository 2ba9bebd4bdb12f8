//! TODO(kernel brent): not yet implemented.
