//! TODO(kernel filters): not yet implemented.
